"""Due dates and escalation stages. (Pure.)

A lead is due ``stage1`` of working time after it arrived, or at the resubmission date a
seller set. From ``reminder`` before that it is "soon", from the due date "overdue". The
stages: the reminder to the editor at the reminder point, stage 1 (the editor) at the due
date, stage 2 (the supervisor) ``stage2`` later in wall-clock time (``stage2_resubmission``
for a resubmission). A notification that falls outside opening hours, or on a closed day,
goes out at the next opening. A seller's reply or completing the lead stops the clock; a
new due date starts it again under a new version, so each (lead, stage, version) fires once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from models.business_calendar import BusinessCalendar, NeverOpen
from models.durations import parse_duration

STAGES = ("reminder", "stage1", "stage2")
Stage = Literal["reminder", "stage1", "stage2"]

if TYPE_CHECKING:  # the schema's types only: a pure rule does not load configuration
    from models.dealer_config import EscalationConfig


@dataclass(frozen=True)
class EscalationRules:
    """The dealer's escalation durations as time spans (their defaults live in the schema,
    ``models.dealer_config.EscalationConfig``)."""

    stage1: timedelta
    reminder: timedelta
    stage2: timedelta
    stage2_resubmission: timedelta
    # What stage 2 does besides informing the supervisor: nothing, back to the pool, or
    # hand the lead to the supervisor.
    stage2_action: Literal["inform", "pool", "supervisor"] = "inform"

    @classmethod
    def from_schema(cls, cfg: EscalationConfig) -> EscalationRules:
        return cls(
            stage1=parse_duration(cfg.stage1),
            reminder=parse_duration(cfg.reminder),
            stage2=parse_duration(cfg.stage2),
            stage2_resubmission=parse_duration(cfg.stage2_resubmission),
            stage2_action=cfg.stage2_action,
        )


@dataclass(frozen=True)
class LeadClock:
    status: str
    due_at: datetime | None
    due_kind: str = "stage1"  # stage1 | resubmission
    due_set_at: datetime | None = None
    reacted_at: datetime | None = None


def first_due(received_at: datetime, calendar: BusinessCalendar, rules: EscalationRules) -> datetime | None:
    try:
        return calendar.add_working_time(received_at, rules.stage1)
    except NeverOpen:
        return None


def due_state(*, status: str, due_at: datetime | None, now: datetime, reminder: timedelta) -> str:
    """none | soon | overdue: the one definition used by every view."""
    if status != "open" or due_at is None:
        return "none"
    if now >= due_at:
        return "overdue"
    if now >= due_at - reminder:
        return "soon"
    return "none"


def stopped(clock: LeadClock) -> bool:
    if clock.status != "open" or clock.due_at is None:
        return True
    return (
        clock.reacted_at is not None and clock.due_set_at is not None and clock.reacted_at >= clock.due_set_at
    )


def nominal_times(clock: LeadClock, rules: EscalationRules) -> dict[str, datetime]:
    assert clock.due_at is not None
    later = rules.stage2_resubmission if clock.due_kind == "resubmission" else rules.stage2
    return {"reminder": clock.due_at - rules.reminder, "stage1": clock.due_at, "stage2": clock.due_at + later}


@dataclass(frozen=True)
class Step:
    stage: str
    nominal: datetime
    fire_at: datetime
    fire: bool  # False: skipped as stale (a reminder whose stage 1 is due as well)


def plan(
    clock: LeadClock, rules: EscalationRules, calendar: BusinessCalendar, *, done: set[str], now: datetime
) -> tuple[list[Step], datetime | None]:
    """The stages due now (in order), and when the next one is due (``None``: nothing left)."""
    if stopped(clock):
        return [], None
    nominal = nominal_times(clock, rules)
    steps: list[Step] = []
    pending = [stage for stage in STAGES if stage not in done]
    fire_times: dict[str, datetime] = {}
    for stage in pending:
        try:
            fire_times[stage] = calendar.next_opening(nominal[stage])
        except NeverOpen:
            fire_times[stage] = nominal[stage]
    for stage in pending:
        if fire_times[stage] > now:
            return steps, fire_times[stage]
        stale = stage == "reminder" and "stage1" in fire_times and fire_times["stage1"] <= now
        steps.append(Step(stage, nominal[stage], fire_times[stage], fire=not stale))
    return steps, None


def parse_when(text: str, *, now: datetime, calendar: BusinessCalendar) -> datetime:
    """A resubmission date as people write it: ``2026-12-01 10:00`` (the dealer's local time
    unless an offset is given), ``2026-12-01`` (its first opening), or ``+2h`` / ``+3d``."""
    from datetime import date as date_type
    from datetime import time

    cleaned = text.strip()
    if cleaned.startswith("+"):
        return now + parse_duration(cleaned[1:])
    try:
        if len(cleaned) == 10:
            day = date_type.fromisoformat(cleaned)
            return calendar.next_opening(datetime.combine(day, time(0), calendar.zone))
        moment = datetime.fromisoformat(cleaned.replace(" ", "T", 1))
    except (ValueError, NeverOpen):
        raise ValueError(
            f'{text!r} is no date; write e.g. "2026-12-01 10:00", "2026-12-01" or "+2h"'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=calendar.zone)
