"""Speed to lead: the response-time facts of one lead, from what happened to it. (Pure.)

The clock starts when the enquiry arrived (the mail was stored: what the customer waits
from). The first personal answer is the earliest of

- a seller's reply (the autoresponse is no answer: nobody read the enquiry), and
- completing the lead with a reason that says the customer was reached (the dealer's
  ``[dealers.reports] answered_reasons``, by default ``sold``, ``bought_elsewhere`` and
  ``no_interest``: one cannot know any of them without having spoken to the customer, so the
  completion is when the answer is known to have happened at the latest). ``unreachable``,
  ``duplicate`` and ``spam`` are no answer.

An answer once recorded stays, even when the lead is reopened (the customer was reached).
Times are counted twice: as wall-clock time and as the dealer's working time (opening hours,
holidays, closing days and daylight-saving days as ``models.business_calendar`` counts them).
"Answered within stage 1" compares the first answer with the lead's first stage-1 due date;
an escalation counts when its stage fired before the first answer (or the lead was never
answered): a resubmission going overdue after the answer is no slow first response.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from models.business_calendar import BusinessCalendar

DEFAULT_ANSWERED_REASONS = ("sold", "bought_elsewhere", "no_interest")


@dataclass(frozen=True)
class Answer:
    at: datetime
    kind: str  # reply | completion
    by: int | None  # the user who answered (the editor for a completion)


@dataclass(frozen=True)
class LeadHistory:
    arrived_at: datetime
    stage1_due_at: datetime | None
    editor_id: int | None  # the lead's editor now
    first_reply: Answer | None = None  # the earliest seller reply
    completed_at: datetime | None = None  # the completion in force (None: open)
    completion_reason: str | None = None
    completed_by: int | None = None
    # (stage, fired_at) of every stage 1 and stage 2 that fired (not "skipped")
    escalations: Sequence[tuple[str, datetime]] = ()
    # The answer stored before (a completion that counted, then reopened): kept.
    previous_answer: Answer | None = None


@dataclass(frozen=True)
class ResponseFacts:
    arrived_at: datetime
    arrived_day: date  # in the dealer's time zone
    arrived_week: date  # the Monday of that day's ISO week
    stage1_due_at: datetime | None
    seller_id: int | None  # who answered first; unanswered: the editor now (None: the pool)
    first_answer_at: datetime | None
    first_answer_kind: str | None
    first_answer_by: int | None
    first_answer_working_seconds: int | None
    first_answer_wall_seconds: int | None
    answered_within_stage1: bool
    escalated_stage1: bool
    escalated_stage2: bool
    completed_at: datetime | None
    completion_reason: str | None
    completion_working_seconds: int | None
    completion_wall_seconds: int | None

    def as_row(self) -> dict[str, object]:
        return dict(self.__dict__)


def _seconds(span: timedelta) -> int:
    return max(0, round(span.total_seconds()))


def first_answer(history: LeadHistory, answered_reasons: Collection[str]) -> Answer | None:
    candidates = [a for a in (history.previous_answer, history.first_reply) if a is not None]
    if history.completed_at is not None and history.completion_reason in answered_reasons:
        candidates.append(Answer(history.completed_at, "completion", history.completed_by))
    return min(candidates, key=lambda a: (a.at, a.kind != "reply")) if candidates else None


def compute_facts(
    history: LeadHistory, calendar: BusinessCalendar, answered_reasons: Collection[str]
) -> ResponseFacts:
    arrived = history.arrived_at
    local_day = arrived.astimezone(calendar.zone).date()
    answer = first_answer(history, answered_reasons)
    answered_at = answer.at if answer else None
    escalated = {
        stage for stage, fired_at in history.escalations if answered_at is None or fired_at < answered_at
    }
    completed = history.completed_at
    return ResponseFacts(
        arrived_at=arrived,
        arrived_day=local_day,
        arrived_week=local_day - timedelta(days=local_day.weekday()),
        stage1_due_at=history.stage1_due_at,
        seller_id=answer.by if answer and answer.by is not None else history.editor_id,
        first_answer_at=answered_at,
        first_answer_kind=answer.kind if answer else None,
        first_answer_by=answer.by if answer else None,
        first_answer_working_seconds=_seconds(calendar.working_time(arrived, answered_at))
        if answered_at
        else None,
        first_answer_wall_seconds=_seconds(answered_at - arrived) if answered_at else None,
        answered_within_stage1=answered_at is not None
        and (history.stage1_due_at is None or answered_at <= history.stage1_due_at),
        escalated_stage1="stage1" in escalated,
        escalated_stage2="stage2" in escalated,
        completed_at=completed,
        completion_reason=history.completion_reason if completed else None,
        completion_working_seconds=_seconds(calendar.working_time(arrived, completed)) if completed else None,
        completion_wall_seconds=_seconds(completed - arrived) if completed else None,
    )
