"""The end-to-end probe (issue 14): a marked test enquiry sent through a dealer's real intake
path, timed until ingest made it a probe lead, then removed with everything it left.

- :func:`start` writes a waiting :class:`ProbeRun` with a random token; :func:`send` delivers
  the mail (``smtp``: to our own listener, addressed to the dealer's first mailbox; ``imap``:
  APPENDed to the dealer's mailbox, so the real poller takes it).
- Ingest asks :func:`take` for every mail it writes: only a header token that matches a
  *waiting* run of the receiving dealer makes a probe (a forged or expired token is an
  ordinary mail). The probe lead is written without side effects: no routing, no due date, no
  autoresponse, forward or notification, no webhook, no response-time facts; the run becomes
  ``ok`` with the seconds from its start.
- :func:`remove_traces` deletes the lead, its activities, the inbound row, any outbound or
  webhook rows, and the contact made for it. The run's row stays: the metrics read it.
- :func:`run_probe` is the whole thing, blocking (``lms ops probe``); :class:`PeriodicProbes`
  does it in steps on the scheduler's passes (send now, look again on later passes).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from intake.imap import ImapPoller, accounts_from
from intake.parsing.mime import ParsedMail
from models.clock import Clock, system_clock
from models.db import Database
from models.durations import parse_duration
from models.ops_tables import ProbeRun
from models.policy import DealerPolicy, load_policy, policy_for
from models.privacy_tables import AuditEntry
from models.probe_rules import (
    PROBE_FORMAT,
    PROBE_HEADER,
    STALE_AFTER,
    due,
    expired,
    external_id,
    probe_mail,
    probe_message_id,
    token_in,
)
from models.report_tables import LeadFact
from models.settings import Settings, split_host_port
from models.tables import (
    Contact,
    Dealer,
    EscalationEvent,
    InboundMessage,
    Lead,
    LeadActivity,
    OutboundMessage,
)
from models.webhook_tables import WebhookDelivery

log = logging.getLogger(__name__)

SEND_TIMEOUT = 15.0  # seconds for handing the probe mail over (SMTP session, IMAP APPEND)
DEFAULT_TIMEOUT = timedelta(minutes=2)


class ProbeError(Exception):
    """The probe could not be started or sent (one sentence, for a person)."""


# -- ingest's side ------------------------------------------------------------------------------
def waiting_run(session: Session, dealer_id: str, parsed: ParsedMail) -> ProbeRun | None:
    """The waiting run this mail's probe header names for this dealer, if any."""
    token = token_in(parsed.header(PROBE_HEADER))
    if token is None:
        return None
    return session.scalar(
        select(ProbeRun).where(
            ProbeRun.token == token, ProbeRun.dealer_id == dealer_id, ProbeRun.state == "waiting"
        )
    )


def take(
    session: Session, *, dealer_id: str, inbound_id: int, via: str, parsed: ParsedMail, now: datetime
) -> Lead | None:
    """Make the mail a probe lead when it is one (see the module's docstring); else ``None``."""
    run = waiting_run(session, dealer_id, parsed)
    if run is None:
        return None
    # Compare-and-set: a prober that gave up meanwhile (timeout) wins; the mail is ordinary then.
    done = session.execute(
        update(ProbeRun)
        .where(ProbeRun.id == run.id, ProbeRun.state == "waiting")
        .values(state="ok", finished_at=now, seconds=max(0.0, (now - run.started_at).total_seconds()))
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    contact = Contact(
        dealer_id=dealer_id, name="LMS probe", details={"probe": True}, created_at=now, updated_at=now
    )
    session.add(contact)
    session.flush()
    lead = Lead(
        dealer_id=dealer_id,
        contact_id=contact.id,
        inbound_id=inbound_id,
        ordinal=0,
        status="completed",  # in nobody's open list, no due date, no escalation
        completed_at=now,
        subject=parsed.subject[:500] or None,
        message="",
        format=PROBE_FORMAT,
        external_id=external_id(run.token),
        created_at=now,
        last_activity_at=now,
    )
    session.add(lead)
    session.flush()
    session.add(
        LeadActivity(
            lead_id=lead.id,
            at=now,
            kind="received",
            text=f"End-to-end probe {run.id} via {via}: removed by the probe",
            inbound_id=inbound_id,
            data={},
        )
    )
    log.info("probe %s of %s arrived as lead %s", run.id, dealer_id, lead.id, extra={"lead_id": lead.id})
    return lead


# -- the prober's side --------------------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    run_id: int
    token: str
    dealer_id: str
    via: str
    started_at: datetime


@dataclass
class ProbeResult:
    dealer: str
    via: str
    run_id: int
    state: str  # ok | timeout | failed
    seconds: float | None
    error: str | None
    removed: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "dealer": self.dealer,
            "via": self.via,
            "run_id": self.run_id,
            "ok": self.state == "ok",
            "state": self.state,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "error": self.error,
            "removed": self.removed,
        }


def probe_config_of(policy: DealerPolicy) -> tuple[str, str | None, timedelta]:
    """(via, IMAP mailbox, timeout) of the dealer's probe; SMTP with two minutes unset."""
    probe = policy.config.monitoring.probe
    if probe is None:
        return "smtp", None, DEFAULT_TIMEOUT
    return probe.via, imap_mailbox_of(policy), parse_duration(probe.timeout)


def imap_mailbox_of(policy: DealerPolicy) -> str | None:
    """The IMAP mailbox (its user) a probe via IMAP appends to: the one named, or the only one."""
    probe = policy.config.monitoring.probe
    if probe is not None and probe.mailbox is not None:
        return probe.mailbox
    users = [box.user for box in policy.imap]
    return users[0] if len(users) == 1 else None


def start(db: Database, dealer_id: str, via: str, *, now: datetime) -> Started:
    token = secrets.token_hex(16)
    with db.session() as session:
        run = ProbeRun(dealer_id=dealer_id, token=token, via=via, started_at=now, state="waiting")
        session.add(run)
        session.flush()
        run_id = run.id
    return Started(run_id, token, dealer_id, via, now)


def send(
    db: Database,
    settings: Settings,
    policy: DealerPolicy,
    run: Started,
    *,
    mailbox: str | None,
    now: datetime,
) -> None:
    """Hand the probe mail over; :class:`ProbeError` when that fails."""
    to = policy.mailboxes[0]
    raw = probe_mail(token=run.token, dealer_id=policy.id, to=to, sender=policy.sender_address, now=now)
    if run.via == "imap":
        _append(db, settings, policy.id, mailbox, raw)
        return
    host, port = split_host_port(settings.probe_smtp or settings.smtp_listen)
    if host in ("0.0.0.0", "::", ""):  # a wildcard listener is reached on loopback
        host = "127.0.0.1"
    try:
        with smtplib.SMTP(host, port, timeout=SEND_TIMEOUT) as client:
            client.sendmail("", [to], raw)  # the null sender: nothing may bounce back to it
    except (OSError, smtplib.SMTPException) as exc:
        raise ProbeError(f"the SMTP intake at {host}:{port} did not take the probe mail: {exc}") from exc


def _imap_session(db: Database, settings: Settings, dealer_id: str, mailbox: str | None) -> ImapPoller:
    """A poller object for its connection code only (TLS, STARTTLS, password or OAuth2 as
    configured); it is never started."""
    with db.read() as session:
        dealer = session.get(Dealer, dealer_id)
        accounts = accounts_from([dealer]) if dealer is not None else []
    found = [a for a in accounts if a.user == mailbox]
    if not found:
        raise ProbeError(f"dealer {dealer_id} has no [[dealers.imap]] mailbox {mailbox!r} for the probe")
    return ImapPoller(found[0], db, enqueue=None, secret_key=settings.secret_key)


def _logout(poller: ImapPoller) -> None:
    with contextlib.suppress(Exception):
        if poller.client is not None:
            poller.client.logout()


def _append(db: Database, settings: Settings, dealer_id: str, mailbox: str | None, raw: bytes) -> None:
    """APPEND to the folder the dealer's poller reads: the real poller takes it from there."""
    poller = _imap_session(db, settings, dealer_id, mailbox)
    try:
        poller.connect().append(poller.account.folder, raw)
    except Exception as exc:
        raise ProbeError(f"could not append the probe mail to {poller.account.key}: {exc}") from exc
    finally:
        _logout(poller)


def remove_from_mailbox(
    db: Database, settings: Settings, dealer_id: str, mailbox: str | None, token: str
) -> int:
    """Delete the probe's own mail from the dealer's mailbox (the folder read and the one the
    poller moves to), found by its Message-ID; ``UID EXPUNGE`` (UIDPLUS) removes only that mail,
    without it the mail stays flagged ``\\Deleted``. Never fails the probe: a warning at most."""
    removed = 0
    try:
        poller = _imap_session(db, settings, dealer_id, mailbox)
    except ProbeError:
        return 0
    account = poller.account
    try:
        client = poller.connect()
        for folder in dict.fromkeys(f for f in (account.folder, account.move_to) if f):
            client.select_folder(folder)
            uids = client.search(["HEADER", "Message-ID", probe_message_id(token)])
            if uids:
                client.add_flags(uids, [b"\\Deleted"])
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(uids)
                removed += len(uids)
    except Exception as exc:
        log.warning(
            "probe: could not remove its mail from %s: %s", account.key, exc, extra={"dealer": dealer_id}
        )
    finally:
        _logout(poller)
    return removed


def state_of(db: Database, run_id: int) -> ProbeRun | None:
    with db.read() as session:
        run = session.get(ProbeRun, run_id)
        if run is not None:
            session.expunge(run)
        return run


def give_up(db: Database, run_id: int, state: str, error: str, *, now: datetime) -> bool:
    """Mark a waiting run ``timeout`` or ``failed``; ``False`` when ingest took it first."""
    with db.session() as session:
        done = session.execute(
            update(ProbeRun)
            .where(ProbeRun.id == run_id, ProbeRun.state == "waiting")
            .values(state=state, finished_at=now, error=error[:2000])
            .execution_options(synchronize_session=False)
        )
        return done.rowcount == 1  # type: ignore[attr-defined]


def remove_traces(db: Database, dealer_id: str, token: str) -> dict[str, int]:
    """Delete everything the probe with this token left (safe to repeat): its lead(s), their
    activities, escalation events, facts, audit entries, outbound and webhook rows, the contact
    made for it, and the stored mail (also one not yet ingested: found by its Message-ID)."""
    counts = dict.fromkeys(("leads", "inbound", "outbound", "webhooks", "contacts"), 0)
    with db.read() as session:  # nothing there (the usual case for old runs): no write lock
        if not _left_anything(session, dealer_id, token):
            return counts
    with db.session() as session:
        leads = session.execute(
            select(Lead.id, Lead.contact_id, Lead.inbound_id).where(
                Lead.dealer_id == dealer_id,
                Lead.external_id == external_id(token),
                Lead.format == PROBE_FORMAT,
            )
        ).all()
        lead_ids = [row.id for row in leads]
        contact_ids = {row.contact_id for row in leads}
        inbound_ids = {row.inbound_id for row in leads if row.inbound_id is not None}
        inbound_ids |= set(
            session.scalars(
                select(InboundMessage.id).where(
                    InboundMessage.dealer_id == dealer_id,
                    InboundMessage.message_id == probe_message_id(token),
                )
            )
        )
        if lead_ids:
            session.execute(delete(LeadActivity).where(LeadActivity.lead_id.in_(lead_ids)))
            session.execute(delete(EscalationEvent).where(EscalationEvent.lead_id.in_(lead_ids)))
            session.execute(delete(LeadFact).where(LeadFact.lead_id.in_(lead_ids)))
            session.execute(delete(AuditEntry).where(AuditEntry.lead_id.in_(lead_ids)))
            counts["outbound"] = _count(
                session, delete(OutboundMessage).where(OutboundMessage.lead_id.in_(lead_ids))
            )
            counts["webhooks"] = _count(
                session, delete(WebhookDelivery).where(WebhookDelivery.lead_id.in_(lead_ids))
            )
            counts["leads"] = _count(session, delete(Lead).where(Lead.id.in_(lead_ids)))
        if inbound_ids:
            session.execute(delete(LeadActivity).where(LeadActivity.inbound_id.in_(inbound_ids)))
            counts["inbound"] = _count(
                session, delete(InboundMessage).where(InboundMessage.id.in_(inbound_ids))
            )
        for contact_id in contact_ids:
            # Only a contact nobody else uses (the probe makes its own; this is a safety net).
            others = session.scalar(
                select(func.count()).select_from(Lead).where(Lead.contact_id == contact_id)
            )
            if not others:
                session.execute(delete(AuditEntry).where(AuditEntry.contact_id == contact_id))
                counts["contacts"] += _count(session, delete(Contact).where(Contact.id == contact_id))
    return counts


def _left_anything(session: Session, dealer_id: str, token: str) -> bool:
    lead = select(Lead.id).where(Lead.dealer_id == dealer_id, Lead.external_id == external_id(token))
    mail = select(InboundMessage.id).where(
        InboundMessage.dealer_id == dealer_id, InboundMessage.message_id == probe_message_id(token)
    )
    return session.scalar(lead.limit(1)) is not None or session.scalar(mail.limit(1)) is not None


def _count(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0))


def run_probe(
    db: Database,
    settings: Settings,
    dealer_id: str,
    *,
    via: str | None = None,
    timeout: float | None = None,
    clock: Clock = system_clock,
    poll: Callable[[float], object] = time.sleep,
) -> ProbeResult:
    """The whole probe, blocking: start, send, wait for the probe lead, remove it."""
    with db.read() as session:
        policy = load_policy(session, dealer_id)
    configured_via, _, configured_timeout = probe_config_of(policy)
    via = via or configured_via
    limit = timedelta(seconds=timeout) if timeout is not None else configured_timeout
    mailbox = imap_mailbox_of(policy)
    if via == "imap" and mailbox is None:
        raise ProbeError(
            f"dealer {dealer_id}: say which IMAP mailbox the probe uses ([dealers.monitoring.probe] mailbox)"
        )
    run = start(db, dealer_id, via, now=clock())
    result = ProbeResult(dealer_id, via, run.run_id, "waiting", None, None)
    try:
        send(db, settings, policy, run, mailbox=mailbox, now=clock())
    except ProbeError as exc:
        give_up(db, run.run_id, "failed", str(exc), now=clock())
        result.state, result.error = "failed", str(exc)
    else:
        wait = 0.02
        while True:
            row = state_of(db, run.run_id)
            if row is not None and row.state != "waiting":
                result.state, result.seconds, result.error = row.state, row.seconds, row.error
                break
            if expired(run.started_at, limit, clock()):
                error = f"no probe lead within {limit.total_seconds():g}s"
                if give_up(db, run.run_id, "timeout", error, now=clock()):
                    result.state, result.error = "timeout", error
                    break
                continue  # ingest took it in the last moment: read the run again
            poll(wait)
            wait = min(wait * 1.5, 0.5)
    result.removed = remove_traces(db, dealer_id, run.token)
    if via == "imap":
        result.removed["imap"] = remove_from_mailbox(db, settings, dealer_id, mailbox, run.token)
    return result


# -- the scheduler's side -----------------------------------------------------------------------
@dataclass
class _Tracked:
    run: Started
    timeout: timedelta
    mailbox: str | None = None


class PeriodicProbes:
    """Probes of the dealers whose ``monitoring.probe.every`` is set, in steps that never wait:
    each :meth:`once` sends what is due, gives up on runs past their timeout and removes what
    finished runs left. Every hour (and at the first pass) runs left waiting by a prober that
    died become ``timeout`` and their traces are removed."""

    LEFTOVERS_EVERY = timedelta(hours=1)
    # How often the dealers' probe plans are read (the scheduler wakes every few seconds).
    PLANS_EVERY = timedelta(seconds=30)
    # Finished runs are kept this long (the latest of each dealer always: the metrics read it).
    KEEP_RUNS = timedelta(days=7)
    # Finished runs looked at for leftovers: a day at the first pass (a restart), else a bit
    # more than the time since the last look.
    FIRST_LOOK_BACK = timedelta(days=1)

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.tracked: dict[int, _Tracked] = {}
        self._leftovers_at: datetime | None = None
        self._plans_at: datetime | None = None

    def once(self, now: datetime) -> list[int]:
        """One pass; the ids of the runs started now. A failure here is logged and never
        stops the scheduler's pass (its heartbeat, escalations and sweeps go on)."""
        try:
            return self._once(now)
        except Exception:
            log.exception("probe pass failed")
            return []

    def _once(self, now: datetime) -> list[int]:
        self._finish(now)
        if self._leftovers_at is None or now - self._leftovers_at >= self.LEFTOVERS_EVERY:
            since = (
                now - self.FIRST_LOOK_BACK if self._leftovers_at is None else self._leftovers_at - STALE_AFTER
            )
            self._leftovers(now, since)
            self._leftovers_at = now
        if self._plans_at is not None and now - self._plans_at < self.PLANS_EVERY:
            return []
        self._plans_at = now
        return self._start_due(now)

    def _start_due(self, now: datetime) -> list[int]:
        with self.db.read() as session:
            plans = []
            for dealer in session.scalars(select(Dealer).order_by(Dealer.id)):
                policy, dealer_id = policy_for(dealer), dealer.id
                probe = policy.config.monitoring.probe
                if probe is None or probe.every is None:
                    continue
                if any(t.run.dealer_id == dealer_id for t in self.tracked.values()):
                    continue  # one at a time per dealer
                last = session.scalar(
                    select(func.max(ProbeRun.started_at)).where(ProbeRun.dealer_id == dealer_id)
                )
                if due(parse_duration(probe.every), last, now):
                    plans.append((policy, *probe_config_of(policy)))
        started = []
        for policy, via, mailbox, timeout in plans:
            run = start(self.db, policy.id, via, now=now)
            try:
                send(self.db, self.settings, policy, run, mailbox=mailbox, now=now)
            except Exception as exc:  # one dealer's broken path must not stop the others' probes
                log.warning("probe of %s failed: %s", policy.id, exc, extra={"dealer": policy.id})
                give_up(self.db, run.run_id, "failed", str(exc) or type(exc).__name__, now=now)
            self.tracked[run.run_id] = _Tracked(run, timeout, mailbox)
            started.append(run.run_id)
        return started

    def _finish(self, now: datetime) -> None:
        for run_id, tracked in list(self.tracked.items()):
            row = state_of(self.db, run_id)
            if row is not None and row.state == "waiting":
                if not expired(tracked.run.started_at, tracked.timeout, now):
                    continue
                error = f"no probe lead within {tracked.timeout.total_seconds():g}s"
                if not give_up(self.db, run_id, "timeout", error, now=now):
                    continue  # taken in the last moment: finished on the next pass
                log.warning("probe %s of %s: %s", run_id, tracked.run.dealer_id, error)
            remove_traces(self.db, tracked.run.dealer_id, tracked.run.token)
            if tracked.run.via == "imap":
                remove_from_mailbox(
                    self.db, self.settings, tracked.run.dealer_id, tracked.mailbox, tracked.run.token
                )
            del self.tracked[run_id]

    def _leftovers(self, now: datetime, since: datetime) -> None:
        columns = (ProbeRun.id, ProbeRun.dealer_id, ProbeRun.token, ProbeRun.state, ProbeRun.started_at)
        with self.db.read() as session:
            runs = list(
                session.execute(
                    select(*columns).where(
                        ProbeRun.state == "waiting", ProbeRun.started_at < now - STALE_AFTER
                    )
                )
            )
            runs += session.execute(
                select(*columns).where(ProbeRun.state != "waiting", ProbeRun.finished_at >= since)
            ).all()
        for run in runs:
            if run.id in self.tracked:
                continue
            if run.state == "waiting":
                if not expired(run.started_at, STALE_AFTER, now):
                    continue  # a prober may still wait for it
                give_up(self.db, run.id, "timeout", "nobody waited for it any more", now=now)
            remove_traces(self.db, run.dealer_id, run.token)
        with self.db.session() as session:
            latest = (
                select(func.max(ProbeRun.id)).where(ProbeRun.state != "waiting").group_by(ProbeRun.dealer_id)
            )
            session.execute(
                delete(ProbeRun).where(
                    ProbeRun.state != "waiting",
                    ProbeRun.started_at < now - self.KEEP_RUNS,
                    ProbeRun.id.not_in(latest),
                )
            )
