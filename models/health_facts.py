"""The health verdict read from the database: every fact the rules of :mod:`models.health` and
:mod:`models.silence` judge. Read-only; one deferred transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from models.health import (
    ImapFacts,
    Issue,
    PipelineFacts,
    Thresholds,
    Verdict,
    delivery_silence_issue,
    imap_issues,
    oauth_issue,
    pipeline_issues,
    scheduler_issue,
    verdict,
)
from models.mailbox_tables import OAuthToken
from models.ops_tables import Heartbeat, ProbeRun
from models.ops_views import ops_status
from models.policy import DealerPolicy, policy_for
from models.settings import Settings
from models.silence import expectation_issue, floor_issues
from models.tables import (
    Dealer,
    EscalationEvent,
    ImapStatus,
    InboundMessage,
    Lead,
    OutboundMessage,
)

# Mail the dealer's own mailbox address receives (the IMAP poller is judged by its own limit).
DELIVERED_VIA = ("smtp", "lmtp", "deliver")
# A silence is measured over at most this much history (a dealer dark for months is one issue).
SILENCE_HORIZON = timedelta(days=62)
# How long a failed probe run by hand (no periodic probe configured) stays an issue.
MANUAL_PROBE_HELD = timedelta(days=1)


def health_verdict(
    session: Session, *, now: datetime, limits: Thresholds, dealer: str | None = None
) -> Verdict:
    """Everything, or one dealer's part of it plus what concerns every dealer (the scheduler)."""
    dealers = session.scalars(select(Dealer).where(Dealer.id == dealer) if dealer else select(Dealer)).all()
    issues: list[Issue] = []
    beat = session.get(Heartbeat, "scheduler")
    stalled = scheduler_issue(
        beat.finished_at if beat else None,
        beat.interval_seconds if beat else 0,
        now,
        host=beat.host if beat else "",
    )
    if stalled:
        issues.append(stalled)
    issues += pipeline_issues(_pipeline(session, now=now, limits=limits, dealer=dealer), limits, dealer)
    statuses = {row.account: row for row in session.scalars(select(ImapStatus))}
    for row in dealers:
        policy = policy_for(row)
        issues += _mailbox_issues(session, policy, row, statuses, now)
        issues += _lead_flow_issues(session, policy, row, now)
        issues += _probe_issues(session, policy, now)
    return verdict(issues, now)


def _mailbox_issues(
    session: Session, policy: DealerPolicy, dealer: Dealer, statuses: dict[str, ImapStatus], now: datetime
) -> list[Issue]:
    issues: list[Issue] = []
    for box in policy.imap:
        status = statuses.get(policy.imap_key(box))
        facts = ImapFacts(
            dealer=policy.id,
            mailbox=box.user,
            limit=policy.imap_silence_limit(box),
            since=dealer.updated_at,
            last_success=status.last_success_at if status else None,
            error_kind=status.error_kind if status else None,
            last_error=status.last_error if status else None,
            failing_since=status.failing_since if status else None,
        )
        issues += imap_issues(facts, now)
        if box.auth == "xoauth2":
            grant = session.get(OAuthToken, (policy.id, box.user.lower()))
            found = oauth_issue(
                policy.id, box.user, grant.state if grant else None, grant.last_error if grant else None
            )
            if found:
                issues.append(found)
    limit = policy.delivery_silence_limit
    if limit is not None:
        last_mail = session.scalar(
            select(func.max(InboundMessage.received_at)).where(
                InboundMessage.dealer_id == policy.id,
                InboundMessage.via.in_(DELIVERED_VIA),
                InboundMessage.received_at >= now - SILENCE_HORIZON,
            )
        )
        since = max(dealer.updated_at, now - SILENCE_HORIZON)
        found = delivery_silence_issue(
            policy.id, policy.calendar, limit, last_mail=last_mail, since=since, now=now
        )
        if found:
            issues.append(found)
    return issues


def _lead_flow_issues(session: Session, policy: DealerPolicy, dealer: Dealer, now: datetime) -> list[Issue]:
    monitoring = policy.config.monitoring
    if not monitoring.min_leads and monitoring.expectation is None:
        return []

    def count(start: datetime, end: datetime) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Lead)
                .where(
                    Lead.dealer_id == policy.id,
                    Lead.created_at >= start,
                    Lead.created_at < end,
                    Lead.format != "probe",
                )
            )
            or 0
        )

    # Since when the dealer's mail flows here: its first stored mail (a new dealer is not
    # judged on the weeks before it came).
    first = session.scalar(
        select(func.min(InboundMessage.received_at)).where(InboundMessage.dealer_id == policy.id)
    )
    if first is None:
        return []
    issues = floor_issues(
        policy.id, list(monitoring.min_leads), policy.calendar, now=now, count=count, since=first
    )
    if monitoring.expectation is not None:
        found = expectation_issue(
            policy.id, monitoring.expectation, policy.calendar, now=now, count=count, since=first
        )
        if found:
            issues.append(found)
    return issues


def _probe_issues(session: Session, policy: DealerPolicy, now: datetime) -> list[Issue]:
    """The dealer's last finished end-to-end probe failed: mail sent along the customer's path
    did not become a lead in time. A dealer probed periodically stays failing until a probe
    succeeds; a probe run by hand only for a day (nothing will run again to clear it)."""
    last = session.scalars(
        select(ProbeRun)
        .where(ProbeRun.dealer_id == policy.id, ProbeRun.state != "waiting")
        .order_by(ProbeRun.started_at.desc())
        .limit(1)
    ).first()
    if last is None or last.state == "ok":
        return []
    probe = policy.config.monitoring.probe
    if (probe is None or probe.every is None) and last.started_at < now - MANUAL_PROBE_HELD:
        return []
    return [
        Issue(
            "probe_failing",
            "critical",
            f"the last end-to-end probe of dealer {policy.id} via {last.via} ended {last.state} "
            f"({last.started_at.isoformat()}): {last.error or 'no probe lead in time'}",
            policy.id,
            {"run": last.id, "state": last.state},
        )
    ]


def _pipeline(session: Session, *, now: datetime, limits: Thresholds, dealer: str | None) -> PipelineFacts:
    status = ops_status(session, now=now, queues={}, dealer=dealer)
    inbound, outbound, hooks = status["inbound"], status["outbound"], status["webhooks"]
    out_where = [OutboundMessage.dealer_id == dealer] if dealer else []
    relay_cut = now - limits.relay_window
    # A failed attempt not followed by a success: queued again with an error, or given up. A
    # permanent refusal ("failed": the relay answered 5xx for one recipient, a customer's
    # mistyped address) is about that address, not the relay.
    failing = and_(
        OutboundMessage.last_error.is_not(None),
        OutboundMessage.updated_at >= relay_cut,
        OutboundMessage.state.in_(("queued", "sending", "dead")),
        *out_where,
    )
    relay_failures = int(
        session.scalar(select(func.count()).select_from(OutboundMessage).where(failing)) or 0
    )
    last_error = (
        session.scalar(
            select(OutboundMessage.last_error)
            .where(failing)
            .order_by(OutboundMessage.updated_at.desc())
            .limit(1)
        )
        if relay_failures
        else None
    )
    in_where = [InboundMessage.dealer_id == dealer] if dealer else []
    unrecognised_old = int(
        session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(
                InboundMessage.state == "unrecognised",
                InboundMessage.received_at < now - limits.unrecognised,
                *in_where,
            )
        )
        or 0
    )
    lead_where = [Lead.dealer_id == dealer] if dealer else []
    escalations_late = int(
        session.scalar(
            select(func.count())
            .select_from(Lead)
            .where(Lead.status == "open", Lead.next_event_at < now - limits.pending, *lead_where)
        )
        or 0
    )
    return PipelineFacts(
        inbound_dead=inbound.get("dead", 0),
        inbound_failed=inbound.get("failed", 0),
        outbound_dead=outbound.get("dead", 0),
        webhooks_dead=hooks.get("dead", 0),
        unrecognised_old=unrecognised_old,
        oldest_pending_seconds=float(status["oldest_pending_seconds"]),
        relay_failures=relay_failures,
        relay_last_error=(last_error or "")[:300] or None,
        stage2_uninformed=_stage2_uninformed(session, now=now, grace=limits.pending, lead_where=lead_where),
        escalations_late=escalations_late,
    )


def _stage2_uninformed(
    session: Session, *, now: datetime, grace: timedelta, lead_where: list
) -> tuple[int, ...]:
    """Open leads whose stage 2 (of their current due date) fired more than ``grace`` ago and
    whose stage-2 mail reached nobody: no recipient at all, or no such mail sent."""
    informed = exists().where(
        OutboundMessage.lead_id == Lead.id,
        OutboundMessage.kind == "stage2",
        OutboundMessage.state == "sent",
        OutboundMessage.created_at >= EscalationEvent.fired_at,
    )
    rows = session.scalars(
        select(Lead.id)
        .join(EscalationEvent, EscalationEvent.lead_id == Lead.id)
        .where(
            Lead.status == "open",
            EscalationEvent.stage == "stage2",
            EscalationEvent.due_version == Lead.due_version,
            EscalationEvent.outcome != "skipped",
            EscalationEvent.fired_at < now - grace,
            ~informed,
            *lead_where,
        )
        .order_by(Lead.id)
        .limit(100)
    )
    return tuple(rows)


def thresholds_from(settings: Settings) -> Thresholds:
    return Thresholds(
        relay_window=timedelta(minutes=settings.health_relay_failure_minutes),
        pending=timedelta(seconds=settings.health_pending_seconds),
        unrecognised=timedelta(hours=settings.health_unrecognised_hours),
    )
