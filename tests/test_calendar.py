"""Working time, due dates, the three states and the stage plan, with a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.business_calendar import BusinessCalendar, NeverOpen
from models.dealer_config import EscalationConfig, HoursConfig
from models.escalation import EscalationRules, LeadClock, due_state, first_due, parse_when, plan

BERLIN = ZoneInfo("Europe/Berlin")
WEEK = {
    "mon": "08:00-18:00",
    "tue": "08:00-18:00",
    "wed": "08:00-18:00",
    "thu": "08:00-18:00",
    "fri": "08:00-18:00",
    "sat": "09:00-13:00",
}
ALWAYS = {day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def calendar(hours: dict[str, Any] | None = None, **extra: Any) -> BusinessCalendar:
    return BusinessCalendar.from_schema(
        "Europe/Berlin", HoursConfig.model_validate({**(hours or WEEK), **extra})
    )


def local(text: str, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN, fold=fold)


@pytest.mark.parametrize(
    ("case", "cal", "start", "hours", "due"),
    [
        (
            "Friday 17:30, open until 18:00, Saturday 09:00-13:00",
            calendar(),
            local("2026-11-27T17:30"),
            2,
            local("2026-11-28T10:30"),
        ),
        (
            "at night: counts from the next opening",
            calendar(),
            local("2026-11-30T02:00"),
            2,
            local("2026-11-30T10:00"),
        ),
        ("Sunday, closed", calendar(), local("2026-11-29T15:00"), 2, local("2026-11-30T10:00")),
        (
            "across a lunch break",
            calendar({**WEEK, "mon": "08:00-12:30, 13:30-18:00"}),
            local("2026-11-30T12:00"),
            2,
            local("2026-11-30T15:00"),
        ),
        (
            "Christmas Eve closed, then holidays and Sunday",
            calendar(holidays="DE-BY", closed=["2026-12-24"]),
            local("2026-12-23T17:00"),
            2,
            local("2026-12-28T09:00"),
        ),
        (
            "arriving on the closing day itself",
            calendar(holidays="DE-BY", closed=["2026-12-24"]),
            local("2026-12-24T10:00"),
            2,
            local("2026-12-28T10:00"),
        ),
        (
            "Epiphany is a holiday in Bavaria",
            calendar(holidays="DE-BY"),
            local("2026-01-06T09:00"),
            2,
            local("2026-01-07T10:00"),
        ),
        (
            "… and no holiday in Berlin",
            calendar(holidays="DE-BE"),
            local("2026-01-06T09:00"),
            2,
            local("2026-01-06T11:00"),
        ),
        (
            "spring forward: 02:00-03:00 does not exist",
            calendar(ALWAYS),
            local("2026-03-29T01:30"),
            2,
            local("2026-03-29T04:30"),
        ),
        (
            "fall back: 02:00-03:00 happens twice",
            calendar(ALWAYS),
            local("2026-10-25T01:30"),
            2,
            local("2026-10-25T02:30", fold=1),
        ),
        (
            "a block ending at 24:00",
            calendar({"mon": "18:00-24:00", "tue": "18:00-24:00"}),
            local("2026-11-30T23:00"),
            2,
            local("2026-12-01T19:00"),
        ),
        ("on the dot of closing", calendar(), local("2026-11-27T18:00"), 1, local("2026-11-28T10:00")),
    ],
)
def test_adding_working_time(
    case: str, cal: BusinessCalendar, start: datetime, hours: float, due: datetime
) -> None:
    result = cal.add_working_time(start.astimezone(UTC), timedelta(hours=hours))
    assert result == due.astimezone(UTC), case


@pytest.mark.parametrize(
    ("case", "cal", "start", "end", "minutes"),
    [
        ("inside one block", calendar(), "2026-11-30T09:00", "2026-11-30T09:45", 45),
        ("both at night: nothing", calendar(), "2026-11-30T19:00", "2026-11-30T22:00", 0),
        ("from night into the morning", calendar(), "2026-11-30T05:00", "2026-11-30T08:20", 20),
        (
            "over the lunch break: 12:00-12:30 and 13:30-14:00",
            calendar({**WEEK, "mon": "08:00-12:30, 13:30-18:00"}),
            "2026-11-30T12:00",
            "2026-11-30T14:00",
            60,
        ),
        (
            "Friday 17:00 to Monday 09:00: 1 h Fri, 4 h Sat, Sunday closed, 1 h Mon",
            calendar(),
            "2026-11-27T17:00",
            "2026-11-30T09:00",
            6 * 60,
        ),
        (
            "over Christmas (DE-BY, 24th closed): 1 h on the 23rd, 1 h on the 28th",
            calendar(holidays="DE-BY", closed=["2026-12-24"]),
            "2026-12-23T17:00",
            "2026-12-28T09:00",
            2 * 60,
        ),
        (
            "Epiphany in Bavaria: the whole 6 January does not count",
            calendar(holidays="DE-BY"),
            "2026-01-05T17:00",
            "2026-01-07T09:00",
            2 * 60,
        ),
        (
            "spring forward, open all day: 01:30 to 04:30 on the clock is 2 h",
            calendar(ALWAYS),
            "2026-03-29T01:30",
            "2026-03-29T04:30",
            120,
        ),
        (
            "fall back, open all day: 01:30 to 03:30 on the clock is 3 h",
            calendar(ALWAYS),
            "2026-10-25T01:30",
            "2026-10-25T03:30",
            180,
        ),
        (
            "the DST Sunday closed, Saturday and Monday blocks as on the clock",
            calendar(),
            "2026-03-28T12:00",
            "2026-03-30T09:00",
            60 + 60,
        ),
        (
            "a block ending at 24:00",
            calendar({"mon": "18:00-24:00"}),
            "2026-11-30T23:00",
            "2026-12-01T10:00",
            60,
        ),
        ("end before start: nothing", calendar(), "2026-11-30T10:00", "2026-11-30T09:00", 0),
        ("a week: 5 x 10 h + 4 h", calendar(), "2026-11-30T00:00", "2026-12-07T00:00", 54 * 60),
    ],
)
def test_working_time_between_two_instants(
    case: str, cal: BusinessCalendar, start: str, end: str, minutes: int
) -> None:
    span = cal.working_time(local(start).astimezone(UTC), local(end).astimezone(UTC))
    assert span == timedelta(minutes=minutes), case


def test_working_time_and_adding_working_time_agree() -> None:
    cal = calendar({**WEEK, "mon": "08:00-12:30, 13:30-18:00"}, holidays="DE-BY", closed=["2026-12-24"])
    start = local("2026-12-21T11:17").astimezone(UTC)
    for hours in (0.5, 2, 7, 13, 31):
        due = cal.add_working_time(start, timedelta(hours=hours))
        assert cal.working_time(start, due) == timedelta(hours=hours)


def test_elapsed_hours_across_the_dst_change_are_real_hours() -> None:
    start = local("2026-03-29T01:30").astimezone(UTC)
    assert calendar(ALWAYS).add_working_time(start, timedelta(hours=2)) - start == timedelta(hours=2)


def test_a_calendar_that_never_opens_is_an_error_not_a_hang() -> None:
    closed = BusinessCalendar.from_schema("Europe/Berlin", HoursConfig())
    with pytest.raises(NeverOpen):
        closed.add_working_time(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1))
    rules = EscalationRules.from_schema(EscalationConfig())
    assert first_due(datetime(2026, 1, 1, tzinfo=UTC), closed, rules) is None


DUE = local("2026-11-28T10:30").astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (DUE - timedelta(minutes=30, seconds=1), "none"),
        (DUE - timedelta(minutes=30), "soon"),
        (DUE - timedelta(seconds=1), "soon"),
        (DUE, "overdue"),
        (DUE + timedelta(days=3), "overdue"),
    ],
)
def test_due_state_boundaries_to_the_second(now: datetime, state: str) -> None:
    assert due_state(status="open", due_at=DUE, now=now, reminder=timedelta(minutes=30)) == state


def test_completed_leads_and_leads_without_a_due_date_have_no_state() -> None:
    later = DUE + timedelta(days=1)
    assert due_state(status="completed", due_at=DUE, now=later, reminder=timedelta(minutes=30)) == "none"
    assert due_state(status="open", due_at=None, now=later, reminder=timedelta(minutes=30)) == "none"


RULES = EscalationRules(
    stage1=timedelta(hours=2),
    reminder=timedelta(minutes=30),
    stage2=timedelta(hours=4),
    stage2_resubmission=timedelta(hours=24),
)


def stages(
    clock: LeadClock, now: datetime, done: set[str] | None = None, cal: BusinessCalendar | None = None
) -> tuple[list[tuple[str, datetime, bool]], datetime | None]:
    steps, following = plan(clock, RULES, cal or calendar(holidays="DE-BY"), done=done or set(), now=now)
    return [(s.stage, s.fire_at.astimezone(BERLIN), s.fire) for s in steps], following


def test_the_stage_plan_of_a_lead() -> None:
    clock = LeadClock(
        status="open",
        due_at=local("2026-11-30T11:00").astimezone(UTC),
        due_set_at=local("2026-11-30T09:00").astimezone(UTC),
    )
    assert stages(clock, local("2026-11-30T10:29:59")) == ([], local("2026-11-30T10:30"))
    assert stages(clock, local("2026-11-30T10:30")) == (
        [("reminder", local("2026-11-30T10:30"), True)],
        local("2026-11-30T11:00"),
    )
    assert stages(clock, local("2026-11-30T11:00"), {"reminder"}) == (
        [("stage1", local("2026-11-30T11:00"), True)],
        local("2026-11-30T15:00"),
    )
    assert stages(clock, local("2026-11-30T15:00"), {"reminder", "stage1"}) == (
        [("stage2", local("2026-11-30T15:00"), True)],
        None,
    )


def test_notifications_outside_opening_hours_wait_for_the_next_opening() -> None:
    # Due Saturday 12:00: stage 2 four hours later is Saturday 16:00, closed; Sunday closed too.
    clock = LeadClock(
        status="open",
        due_at=local("2026-11-28T12:00").astimezone(UTC),
        due_set_at=local("2026-11-28T10:00").astimezone(UTC),
    )
    _, following = stages(clock, local("2026-11-28T12:00"), {"reminder", "stage1"})
    assert following == local("2026-11-30T08:00")
    # Due on Christmas Eve morning's nominal time: nothing on the holidays, Monday it is.
    xmas = LeadClock(
        status="open",
        due_at=local("2026-12-25T10:00").astimezone(UTC),
        due_set_at=local("2026-12-23T10:00").astimezone(UTC),
    )
    _, following = stages(
        xmas, local("2026-12-23T12:00"), cal=calendar(holidays="DE-BY", closed=["2026-12-24"])
    )
    assert following == local("2026-12-28T08:00")


def test_a_scheduler_back_from_downtime_skips_the_stale_reminder() -> None:
    clock = LeadClock(
        status="open",
        due_at=local("2026-11-30T11:00").astimezone(UTC),
        due_set_at=local("2026-11-30T09:00").astimezone(UTC),
    )
    steps, following = stages(clock, local("2026-11-30T12:00"))
    assert steps == [
        ("reminder", local("2026-11-30T10:30"), False),
        ("stage1", local("2026-11-30T11:00"), True),
    ]
    assert following == local("2026-11-30T15:00")


def test_a_reply_or_completion_stops_the_clock_and_a_new_due_date_restarts_it() -> None:
    due, set_at = local("2026-11-30T11:00").astimezone(UTC), local("2026-11-30T09:00").astimezone(UTC)
    answered = LeadClock(
        status="open", due_at=due, due_set_at=set_at, reacted_at=set_at + timedelta(minutes=5)
    )
    assert stages(answered, local("2026-11-30T16:00")) == ([], None)
    assert stages(
        LeadClock(status="completed", due_at=due, due_set_at=set_at), local("2026-11-30T16:00")
    ) == ([], None)
    resubmitted = LeadClock(
        status="open",
        due_at=local("2026-12-02T10:00").astimezone(UTC),
        due_kind="resubmission",
        due_set_at=set_at + timedelta(hours=1),
        reacted_at=set_at + timedelta(minutes=5),
    )
    steps, following = stages(resubmitted, local("2026-12-02T10:00"))
    assert [s[0] for s in steps] == ["reminder", "stage1"] and steps[0][2] is False
    assert following == local("2026-12-03T10:00")  # stage2_resubmission: 24 hours later


def test_parse_when() -> None:
    now = datetime(2026, 11, 30, 9, tzinfo=UTC)
    cal = calendar()
    assert parse_when("2026-12-01 10:00", now=now, calendar=cal) == local("2026-12-01T10:00")
    assert parse_when("2026-12-01T10:00+00:00", now=now, calendar=cal) == datetime(
        2026, 12, 1, 10, tzinfo=UTC
    )
    assert parse_when("2026-12-06", now=now, calendar=cal) == local(
        "2026-12-07T08:00"
    )  # a Sunday: Monday's opening
    assert parse_when("+2h", now=now, calendar=cal) == now + timedelta(hours=2)
    with pytest.raises(ValueError, match="no date"):
        parse_when("next week", now=now, calendar=cal)
