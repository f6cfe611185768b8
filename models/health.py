"""The health verdict (``lms ops health``, ``/api/ops/health``): Zammad's shape, ``{"healthy":
bool, "issues": [...]}``, with a severity per issue so that the exit code (0 ok, 1 warning,
2 critical) plugs into any monitoring system (Nagios' plugin convention).

Pure rules: each takes the facts read from the database (``models.health_facts``) and ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from models.business_calendar import BusinessCalendar

Severity = Literal["warning", "critical"]
EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Issue:
    check: str  # a stable name monitoring can match on, e.g. "imap_silent"
    severity: Severity
    message: str  # one sentence for a person
    dealer: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity,
            "dealer": self.dealer,
            "message": self.message,
            **({"data": self.data} if self.data else {}),
        }


@dataclass(frozen=True)
class Verdict:
    issues: tuple[Issue, ...]
    checked_at: datetime

    @property
    def status(self) -> str:
        if any(i.severity == "critical" for i in self.issues):
            return "critical"
        return "warning" if self.issues else "ok"

    @property
    def healthy(self) -> bool:
        return not self.issues

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "issues": [i.to_dict() for i in self.issues],
        }


def verdict(issues: Iterable[Issue], now: datetime) -> Verdict:
    ordered = sorted(issues, key=lambda i: (i.severity != "critical", i.dealer or "", i.check))
    return Verdict(tuple(ordered), now)


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


# -- mailboxes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapFacts:
    dealer: str
    mailbox: str  # the configured IMAP user: never a customer's address
    limit: timedelta
    # Since when the mailbox is expected to be fetched: its status row or its configuration.
    since: datetime
    last_success: datetime | None
    error_kind: str | None = None
    last_error: str | None = None
    failing_since: datetime | None = None


def imap_issues(box: ImapFacts, now: datetime) -> list[Issue]:
    """A mailbox not fetched for longer than its silence limit is critical (mail stopped
    coming); a failing one still within its limit is a warning (it may recover)."""
    last = box.last_success or box.since
    silent = now - last
    data = {
        "mailbox": box.mailbox,
        "last_success": box.last_success.isoformat() if box.last_success else None,
    }
    if box.error_kind:
        data["error_kind"] = box.error_kind
    if silent > box.limit:
        why = f": {box.error_kind} error, {box.last_error}" if box.error_kind else ""
        when = f"for {_ago(silent)}" if box.last_success else f"since it was configured ({_ago(silent)})"
        return [
            Issue(
                "imap_silent",
                "critical",
                f"IMAP mailbox {box.mailbox} not fetched {when}, limit {_ago(box.limit)}{why}",
                box.dealer,
                data,
            )
        ]
    if box.error_kind:
        since = box.failing_since or now
        return [
            Issue(
                "imap_failing",
                "warning",
                f"IMAP mailbox {box.mailbox} failing ({box.error_kind}) for {_ago(now - since)}: "
                f"{box.last_error}",
                box.dealer,
                data,
            )
        ]
    return []


def oauth_issue(dealer: str, mailbox: str, state: str | None, last_error: str | None) -> Issue | None:
    """An OAuth2 mailbox nobody connected, or whose grant the provider refused (revoked, the
    password changed): only a person can mend it, with ``lms imap connect`` or the admin page."""
    if state == "connected":
        return None
    if state is None:
        what, check = "was never connected", "oauth_not_connected"
    else:
        what, check = f"has a refused grant ({last_error or state})", "oauth_refused"
    return Issue(
        check,
        "critical",
        f"OAuth2 mailbox {mailbox} {what}: connect it with lms imap connect {dealer} {mailbox} "
        "or on the admin page Connect mailbox",
        dealer,
        {"mailbox": mailbox, "state": state},
    )


def delivery_silence_issue(
    dealer: str,
    calendar: BusinessCalendar,
    limit: timedelta,
    *,
    last_mail: datetime | None,
    since: datetime,
    now: datetime,
) -> Issue | None:
    """No mail delivered to the dealer (SMTP, LMTP, the pipe) for longer than its limit,
    counted in its opening hours: a quiet night or Sunday is no alarm, a quiet Tuesday is."""
    start = last_mail or since
    silent = calendar.working_time(start, now) if start < now else timedelta(0)
    if silent <= limit:
        return None
    what = f"since {start.isoformat()}" if last_mail else "since it was configured"
    return Issue(
        "mail_silent",
        "critical",
        f"no mail delivered to dealer {dealer} {what}: {_ago(silent)} of opening hours, limit {_ago(limit)}",
        dealer,
        {
            "last_mail": last_mail.isoformat() if last_mail else None,
            "working_seconds": int(silent.total_seconds()),
        },
    )


# -- the pipeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineFacts:
    inbound_dead: int = 0
    inbound_failed: int = 0
    outbound_dead: int = 0
    webhooks_dead: int = 0
    unrecognised_old: int = 0
    oldest_pending_seconds: float = 0.0
    # Outgoing mails the relay refused or could not take within the window, not sent since.
    relay_failures: int = 0
    relay_last_error: str | None = None
    # Open leads whose stage 2 fired but whose notification reached nobody (no recipient, or
    # the mail is not sent); and leads whose escalation is due but not handled.
    stage2_uninformed: tuple[int, ...] = ()
    escalations_late: int = 0


@dataclass(frozen=True)
class Thresholds:
    relay_window: timedelta = timedelta(minutes=15)
    pending: timedelta = timedelta(minutes=10)
    unrecognised: timedelta = timedelta(hours=24)


def pipeline_issues(facts: PipelineFacts, limits: Thresholds, dealer: str | None = None) -> list[Issue]:
    issues: list[Issue] = []
    if facts.relay_failures:
        issues.append(
            Issue(
                "relay_failures",
                "critical",
                f"{facts.relay_failures} outgoing mail(s) not taken by the relay in the last "
                f"{_ago(limits.relay_window)}: {facts.relay_last_error}",
                dealer,
                {"count": facts.relay_failures},
            )
        )
    dead = {
        "inbound dead": facts.inbound_dead,
        "inbound failing": facts.inbound_failed,
        "outbound dead": facts.outbound_dead,
        "webhooks dead": facts.webhooks_dead,
    }
    if any(dead.values()):
        listed = ", ".join(f"{n} {what}" for what, n in dead.items() if n)
        issues.append(
            Issue(
                "failed_mails",
                "warning",
                f"mails that failed: {listed} (see lms ops status; lms ops retry replays them)",
                dealer,
                {k.replace(" ", "_"): v for k, v in dead.items()},
            )
        )
    if facts.unrecognised_old:
        issues.append(
            Issue(
                "unrecognised_waiting",
                "warning",
                f"{facts.unrecognised_old} unrecognised mail(s) waiting for a person longer than "
                f"{_ago(limits.unrecognised)} (lms unassigned list)",
                dealer,
                {"count": facts.unrecognised_old},
            )
        )
    if facts.oldest_pending_seconds > limits.pending.total_seconds():
        issues.append(
            Issue(
                "pending_old",
                "warning",
                f"the oldest pending row waits for {_ago(timedelta(seconds=facts.oldest_pending_seconds))} "
                f"(limit {_ago(limits.pending)}): are the workers running?",
                dealer,
                {"oldest_pending_seconds": round(facts.oldest_pending_seconds)},
            )
        )
    if facts.stage2_uninformed:
        ids = ", ".join(str(i) for i in facts.stage2_uninformed[:10])
        issues.append(
            Issue(
                "stage2_uninformed",
                "critical",
                f"{len(facts.stage2_uninformed)} lead(s) overdue beyond stage 2 with nobody informed "
                f"(leads {ids}): configure a supervisor or see their mails in lms ops status",
                dealer,
                {"leads": list(facts.stage2_uninformed)},
            )
        )
    if facts.escalations_late:
        issues.append(
            Issue(
                "escalations_late",
                "critical",
                f"{facts.escalations_late} lead(s) with an escalation due for longer than "
                f"{_ago(limits.pending)} and not handled: is the scheduler running?",
                dealer,
                {"count": facts.escalations_late},
            )
        )
    return issues


def scheduler_issue(
    finished_at: datetime | None, interval_seconds: float, now: datetime, *, host: str = ""
) -> Issue | None:
    """The scheduler writes a heartbeat every pass; none for more than two intervals is critical
    (escalations, retries and the sweeper all stand still)."""
    if finished_at is None:
        return Issue(
            "scheduler_stalled", "critical", "the scheduler has never run (lms run or lms scheduler)"
        )
    late = now - finished_at
    if late.total_seconds() <= 2 * interval_seconds:
        return None
    on = f" on {host}" if host else ""
    return Issue(
        "scheduler_stalled",
        "critical",
        f"the scheduler last ran {_ago(late)} ago{on} (it runs every {interval_seconds:g} s)",
        None,
        {"last_pass": finished_at.isoformat(), "interval_seconds": interval_seconds},
    )
