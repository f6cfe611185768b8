"""The process-side Prometheus instruments (issue 14's catalogue) and the calls that move them.

Off until :func:`enable`: every call below is then a no-op, so a one-shot command (``lms
deliver`` runs once per mail) never writes a file into the multiprocess directory, and the
benchmark can measure the intake with metrics off. ``enable`` is called by the long-running
components (``lms/metrics_process.py``) after ``PROMETHEUS_MULTIPROC_DIR`` is decided;
prometheus_client reads that variable when it builds a value, so the instruments are built
here, then, and never at import time. They are registered nowhere: in multiprocess mode the
exposition reads the files (``workers/metrics_export.py``).

Labels are bounded: listener, reply code, dealer id, the configured IMAP user, states, kinds,
stages. Never a customer's address, never a subject. Gauges come from the database at scrape
time (``workers/metrics_db.py``); a process-side Gauge added here must say its
``multiprocess_mode``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LISTENERS = ("smtp", "lmtp")
# A reply of ours that refuses: its code is the label (bounded: we only write a few codes).
_CODE_CHARS = frozenset("0123456789")

FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PIPELINE = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 14400.0)
# A lead's source comes from the mail (an ADF provider name): a sender could invent endless
# ones. Past this many per dealer and process, new ones count as "other".
MAX_SOURCES_PER_DEALER = 50
PASS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class _Listener:
    """One listener's children, bound once: the SMTP hot path does no label look-up."""

    name: str
    connections: Any
    accepted: Any
    received_bytes: Any
    accept_seconds: Any
    refused_family: Any
    refused: dict[str, Any] = field(default_factory=dict)

    def refuse(self, code: str) -> None:
        child = self.refused.get(code)
        if child is None:
            child = self.refused[code] = self.refused_family.labels(self.name, code)
        child.inc()


class _Instruments:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, labels, registry=None)

        self.smtp_connections = counter(
            "lms_smtp_connections", "Connections to the SMTP/LMTP intake.", ("listener",)
        )
        self.smtp_accepted = counter(
            "lms_smtp_mails_accepted", "Mails (LMTP: recipients) answered 250 after DATA.", ("listener",)
        )
        self.smtp_refused = counter(
            "lms_smtp_mails_refused",
            "Mails refused, by our reply code (RCPT 550/452/451, DATA 451/552, SIZE 552).",
            ("listener", "code"),
        )
        self.smtp_bytes = counter(
            "lms_smtp_received_bytes", "Bytes of mail read to the end of DATA.", ("listener",)
        )
        self.smtp_accept_seconds = Histogram(
            "lms_smtp_accept_seconds",
            "From the end of DATA to our 250 (the durable commit).",
            ("listener",),
            buckets=FAST,
            registry=None,
        )
        self.sources: dict[str, set[str]] = {}
        self.listeners: dict[str, _Listener] = {}
        for name in LISTENERS:
            self.listeners[name] = _Listener(
                name=name,
                connections=self.smtp_connections.labels(name),
                accepted=self.smtp_accepted.labels(name),
                received_bytes=self.smtp_bytes.labels(name),
                accept_seconds=self.smtp_accept_seconds.labels(name),
                refused_family=self.smtp_refused,
            )
        self.imap_taken = counter(
            "lms_imap_mails_taken", "Mails taken from a dealer's IMAP mailbox.", ("dealer", "mailbox")
        )
        self.imap_errors = counter(
            "lms_imap_errors",
            "Failed IMAP sessions, by kind (tls, auth, oauth, config, network, server).",
            ("dealer", "mailbox", "kind"),
        )
        self.inbound = counter(
            "lms_inbound", "Inbound messages made final, by state and reason.", ("state", "reason")
        )
        self.leads_created = counter(
            "lms_leads_created", "New leads (probe leads not counted).", ("dealer", "source", "type")
        )
        self.lead_routed_seconds = Histogram(
            "lms_lead_routed_seconds",
            "From our 250 (received_at) to the new lead routed (committed).",
            buckets=PIPELINE,
            registry=None,
        )
        self.autoresponse_relayed_seconds = Histogram(
            "lms_autoresponse_relayed_seconds",
            "From our 250 (received_at) to the autoresponse accepted by the relay.",
            buckets=PIPELINE,
            registry=None,
        )
        self.outbound = counter(
            "lms_outbound", "Outgoing mails made final, by kind and state.", ("kind", "state")
        )
        self.relay_replies = counter(
            "lms_relay_replies",
            "Replies of the SMTP relay to our mails, by code (connection: no reply at all).",
            ("code",),
        )
        self.dead_letters = counter("lms_dead_letters", "Rows given up after their last attempt.", ("kind",))
        self.escalations = counter("lms_escalations_fired", "Escalation stages fired.", ("stage",))
        self.scheduler_pass_seconds = Histogram(
            "lms_scheduler_pass_seconds", "One pass of the scheduler.", buckets=PASS, registry=None
        )
        self.webhooks = counter(
            "lms_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, failed: tried again later, dead).",
            ("state",),
        )


_on: _Instruments | None = None


def enable(directory: str) -> None:
    """Write this process's figures into ``directory`` (prometheus_client's multiprocess mode)."""
    global _on
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import values

    # The value class is chosen when prometheus_client is first imported; choose it again now
    # that the directory is known (a new class also forgets files of an earlier directory).
    values.ValueClass = values.get_value_class()
    _on = _Instruments()


def disable() -> None:
    global _on
    _on = None


def enabled() -> bool:
    return _on is not None


def _since(received_at: datetime) -> float:
    # Wall-clock: received_at is stamped by the system clock in production.
    return max(0.0, time.time() - received_at.timestamp())


# -- intake ---------------------------------------------------------------------------------------
def smtp_connection(listener: str) -> None:
    m = _on
    if m is not None:
        m.listeners[listener].connections.inc()


def smtp_refused(listener: str, reply: str) -> None:
    m = _on
    if m is not None:
        m.listeners[listener].refuse(reply_code(reply))


def smtp_data(listener: str, size: int | None, replies: Iterable[str], seconds: float) -> None:
    """After DATA: the mail's size (None: too big, not kept), our replies (one, or LMTP's one per
    recipient) and the time from the end of DATA to them."""
    m = _on
    if m is None:
        return
    counters = m.listeners[listener]
    if size is not None:
        counters.received_bytes.inc(size)
    accepted = 0
    for reply in replies:
        if reply.startswith("250"):
            accepted += 1
        else:
            counters.refuse(reply_code(reply))
    if accepted:
        counters.accepted.inc(accepted)
        counters.accept_seconds.observe(seconds)


def reply_code(reply: str) -> str:
    code = reply[:3]
    return code if len(code) == 3 and set(code) <= _CODE_CHARS else "other"


def imap_taken(dealer: str, mailbox: str, count: int = 1) -> None:
    m = _on
    if m is not None and count:
        m.imap_taken.labels(dealer, mailbox).inc(count)


def imap_error(dealer: str, mailbox: str, kind: str) -> None:
    m = _on
    if m is not None:
        m.imap_errors.labels(dealer, mailbox, kind).inc()


# -- the pipeline ---------------------------------------------------------------------------------
def inbound_final(state: str, reason: str) -> None:
    m = _on
    if m is not None:
        m.inbound.labels(state, reason).inc()


def lead_created(dealer: str, source: str, lead_type: str, received_at: datetime) -> None:
    m = _on
    if m is not None:
        seen = m.sources.setdefault(dealer, set())
        if source not in seen:
            if len(seen) >= MAX_SOURCES_PER_DEALER:
                source = "other"
            else:
                seen.add(source)
        m.leads_created.labels(dealer, source, lead_type).inc()
        m.lead_routed_seconds.observe(_since(received_at))


def outbound_final(kind: str, state: str) -> None:
    m = _on
    if m is not None:
        m.outbound.labels(kind, state).inc()
        if state == "dead":
            m.dead_letters.labels("outbound").inc()


def autoresponse_relayed(received_at: datetime) -> None:
    m = _on
    if m is not None:
        m.autoresponse_relayed_seconds.observe(_since(received_at))


def relay_reply(code: int | str) -> None:
    m = _on
    if m is not None:
        m.relay_replies.labels(str(code)).inc()


def dead_letter(kind: str) -> None:
    m = _on
    if m is not None:
        m.dead_letters.labels(kind).inc()


def escalations_fired(fired: dict[str, int]) -> None:
    m = _on
    if m is not None:
        for stage, count in fired.items():
            m.escalations.labels(stage).inc(count)


def scheduler_pass(seconds: float) -> None:
    m = _on
    if m is not None:
        m.scheduler_pass_seconds.observe(seconds)


def webhook_attempt(state: str) -> None:
    """``state``: the row's state after the attempt (delivered, queued again, dead)."""
    m = _on
    if m is not None:
        m.webhooks.labels("failed" if state == "queued" else state).inc()
        if state == "dead":
            m.dead_letters.labels("webhook").inc()
