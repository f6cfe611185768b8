"""The weekly summary mail: each supervisor gets the figures of their team, each admin those of
the dealer, on the dealer's first working day of the week (:mod:`models.weekly_summary`),
through the one outbox (kind ``weekly_summary``, with the dealer's legal footer).

Exactly once per person and week: the outbox row's purpose ``weekly_summary:USER:WEEK`` is
unique, so two schedulers, or one that restarts, cannot send it twice; purposes already written
are not even rendered again. A person opts out on the pane's settings page; the dealer file
sets the default (``weekly_summary = false`` on a user, or ``[dealers.reports] weekly_summary =
false`` for the whole dealer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.db import Database
from models.policy import DealerPolicy, policy_for
from models.report_math import human_duration, percent
from models.report_tables import ReportPreference
from models.report_views import ReportScope, dealer_report, slowest_open
from models.tables import Dealer, InboundMessage, OutboundMessage, User
from models.weekly_summary import SummaryWeek, summary_week
from templates_email import labels
from workers import outbox
from workers.render.context import local_time

log = logging.getLogger(__name__)

RECIPIENT_ROLES = ("supervisor", "admin")


def wants_summary(session: Session, policy: DealerPolicy, user: User) -> bool:
    """The person's own choice (settings page), else the dealer file's (default: yes)."""
    chosen = session.get(ReportPreference, user.id)
    if chosen is not None:
        return chosen.weekly_summary
    configured = next((u for u in policy.config.users if u.id == user.username), None)
    return configured.weekly_summary if configured is not None else True


def set_preference(session: Session, user: User, wanted: bool, *, now: datetime) -> None:
    row = session.get(ReportPreference, user.id)
    if row is None:
        session.add(ReportPreference(user_id=user.id, weekly_summary=wanted, updated_at=now))
    else:
        row.weekly_summary, row.updated_at = wanted, now


def team_scope(session: Session, user: User) -> ReportScope:
    """An admin's summary covers the dealer; a supervisor's their team (and the pool), as the
    leads list shows it to them."""
    if user.role == "admin":
        return ReportScope(user.dealer_id)
    members = select(User.id).where(User.dealer_id == user.dealer_id, User.supervisor_id == user.id)
    team = set(session.scalars(members))
    return ReportScope(user.dealer_id, frozenset(team | {user.id}))


def _figures(data: dict[str, Any], lang: str) -> dict[str, Any]:
    return {
        "leads": data["leads"],
        "answered": data["answered"],
        "answered_share": percent(data["answered_share"], lang),
        "answered_within_stage1": data["answered_within_stage1"],
        "within_stage1_share": percent(data["within_stage1_share"], lang),
        "never_answered": data["never_answered"],
        "median": human_duration(data["median_first_answer_working_seconds"]),
        "p90": human_duration(data["p90_first_answer_working_seconds"]),
        "escalated_stage1": data["escalated_stage1"],
        "escalated_stage2": data["escalated_stage2"],
    }


def summary_context(
    session: Session,
    policy: DealerPolicy,
    user: User,
    week: SummaryWeek,
    *,
    now: datetime,
    public_url: str | None,
) -> dict[str, Any]:
    """Everything the mail says, as plain strings (the template sandbox calls nothing)."""
    lang = policy.language
    words = labels(lang)
    scope = team_scope(session, user)
    report = dealer_report(session, scope, week.period, timezone=policy.timezone)
    previous = dealer_report(session, scope, week.period.previous(), timezone=policy.timezone, groups=False)
    last_day = (week.period.end - timedelta(days=1)).astimezone(policy.calendar.zone).date()
    first_day = week.period.start.astimezone(policy.calendar.zone).date()
    day = "%d.%m.%Y" if lang == "de" else "%d %b %Y"
    if user.role == "admin":
        who = "das Autohaus" if lang == "de" else "the dealership"
    else:
        who = "Ihr Team" if lang == "de" else "your team"
    slowest = slowest_open(session, scope, now=now, calendar=policy.calendar)
    return {
        "dealer": {"id": policy.id, "name": policy.name, "email": policy.sender_address},
        "recipient": {"name": user.name, "user": user.username},
        "week": {
            "label": week.key,
            "first": first_day.strftime(day),
            "last": last_day.strftime(day),
            "scope": who,
        },
        "totals": _figures(report["totals"], lang),
        "previous": _figures(previous["totals"], lang) if previous["totals"]["leads"] else None,
        "sellers": [
            {"name": row["name"] or str(words["pool"]), **_figures(row, lang)} for row in report["by_seller"]
        ],
        "slowest": [
            {
                "id": lead["id"],
                "customer": lead["customer"] or "-",
                "editor": lead["editor"] or str(words["pool"]),
                "waiting": human_duration(lead["waiting_working_seconds"]),
                "arrived": local_time(datetime.fromisoformat(lead["arrived_at"]), policy.timezone, lang),
            }
            for lead in slowest
        ],
        "link": f"{public_url.rstrip('/')}/reports" if public_url else "",
        "labels": words,
    }


def purpose(user: User, week: SummaryWeek) -> str:
    return f"weekly_summary:{user.id}:{week.key}"


def _recipients(session: Session, policy: DealerPolicy) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(User.dealer_id == policy.id, User.active, User.role.in_(RECIPIENT_ROLES))
            .order_by(User.id)
        )
    )


def _was_here(session: Session, dealer_id: str, week: SummaryWeek) -> bool:
    """A dealer that had received no mail before the reported week ended was not on the
    platform yet: nobody wants last week's zeros on their first day."""
    first = session.scalar(
        select(InboundMessage.id)
        .where(InboundMessage.dealer_id == dealer_id, InboundMessage.received_at < week.period.end)
        .limit(1)
    )
    return first is not None


@dataclass
class WeeklyResult:
    outbound_ids: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "user: why"


def plan_mails(
    session: Session, policy: DealerPolicy, week: SummaryWeek, *, now: datetime, public_url: str | None
) -> tuple[list[outbox.MailSpec], list[str]]:
    people = _recipients(session, policy)
    wanted = {purpose(u, week): u for u in people}
    written = set(session.scalars(select(OutboundMessage.purpose).where(OutboundMessage.purpose.in_(wanted))))
    specs, skipped = [], []
    for key, user in wanted.items():
        if key in written:
            continue
        if not user.email:
            skipped.append(f"{user.username}: no email address")
            continue
        if not wants_summary(session, policy, user):
            skipped.append(f"{user.username}: opted out")
            continue
        specs.append(
            outbox.MailSpec(
                kind="weekly_summary",
                purpose=key,
                to=(user.email,),
                lang=policy.language,
                context=summary_context(session, policy, user, week, now=now, public_url=public_url),
            )
        )
    return specs, skipped


class WeeklySummaries:
    """The scheduler's part: one pass per call, remembering which dealers' weeks are done."""

    def __init__(self, db: Database, *, grace: timedelta, public_url: str | None) -> None:
        self.db = db
        self.grace = grace
        self.public_url = public_url
        self._done: set[tuple[str, str]] = set()

    def run(self, *, now: datetime) -> WeeklyResult:
        result = WeeklyResult()
        planned: list[tuple[DealerPolicy, SummaryWeek, list[outbox.MailSpec]]] = []
        with self.db.read() as session:
            for dealer in session.scalars(select(Dealer).order_by(Dealer.id)):
                policy = policy_for(dealer)
                if not policy.config.reports.weekly_summary:
                    continue
                week = summary_week(policy.calendar, now)
                if week is None or (policy.id, week.key) in self._done:
                    continue
                if not _was_here(session, policy.id, week):
                    continue
                specs, skipped = plan_mails(session, policy, week, now=now, public_url=self.public_url)
                result.skipped += skipped
                planned.append((policy, week, specs))
        prepared = [outbox.prepare(policy, spec, now=now) for policy, _, specs in planned for spec in specs]
        if prepared:
            with self.db.session() as session:
                for mail in prepared:
                    outbound_id = outbox.queue(session, mail, now=now, grace=self.grace)
                    if outbound_id is not None:
                        result.outbound_ids.append(outbound_id)
            log.info("weekly summaries queued: %d", len(result.outbound_ids))
        self._done |= {(policy.id, week.key) for policy, week, _ in planned}
        return result
