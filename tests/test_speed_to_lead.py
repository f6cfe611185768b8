"""Speed to lead, per lead: the response-time facts that the lead actions keep, on a controllable
clock, against the times a person computes by hand from the dealer's calendar (Mon–Fri
08:00–18:00, Sat 09:00–13:00, Bavarian holidays, 24 December closed, stage 1 = 2 working hours).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.speed import SpeedStack, berlin


@pytest.fixture
def speed(db_url: str, tmp_path: Path) -> Iterator[SpeedStack]:
    stack = SpeedStack(db_url, outbox=tmp_path / "outbox")
    yield stack
    stack.close()


MIN = 60
HOUR = 3600

# (case, arrives, answered by a reply at, working seconds, wall seconds, within stage 1)
REPLIES = [
    ("inside working hours", "2026-11-30T09:00", "2026-11-30T09:45", 45 * MIN, 45 * MIN, True),
    (
        "arrives Friday evening, answered Saturday 09:30: only Saturday's half hour counts",
        "2026-11-27T19:30",
        "2026-11-28T09:30",
        30 * MIN,
        14 * HOUR,
        True,
    ),
    (
        "over Christmas: 1 h on the 23rd; the 24th closed, 25th and 26th holidays, 27th Sunday; "
        "1.5 h on the 28th. Due on the 28th at 09:00: answered too late",
        "2026-12-23T17:00",
        "2026-12-28T09:30",
        150 * MIN,
        4 * 24 * HOUR + 16 * HOUR + 30 * MIN,
        False,
    ),
    (
        "over the spring-forward night: Saturday 12:30-13:00 and Monday 08:00-08:30; "
        "the weekend is an hour shorter on the wall",
        "2026-03-28T12:30",
        "2026-03-30T08:30",
        60 * MIN,
        43 * HOUR,
        True,
    ),
    (
        "over the fall-back night: the weekend is an hour longer on the wall; answered on the "
        "dot of the due date (Monday 09:00) is within stage 1",
        "2026-10-24T12:00",
        "2026-10-26T09:00",
        2 * HOUR,
        46 * HOUR,
        True,
    ),
    (
        "answered before the dealer opens: no working time at all",
        "2026-11-30T06:00",
        "2026-11-30T07:30",
        0,
        90 * MIN,
        True,
    ),
]


def test_the_first_reply_in_working_and_wall_time(speed: SpeedStack) -> None:
    """The table, one lead per case (each lead's facts depend on its own times only): answered by
    a reply, and a second reply an hour later changes nothing."""
    for case, arrives, answered, working, wall, within in REPLIES:
        lead = speed.arrive(arrives)
        speed.reply(lead, answered)
        speed.reply(lead, berlin(answered) + timedelta(hours=1))
        facts = speed.facts(lead)
        assert facts is not None, case
        assert facts.arrived_at == berlin(arrives), case
        assert facts.first_answer_at == berlin(answered), case
        assert facts.first_answer_kind == "reply", case
        assert (facts.first_answer_working_seconds, facts.first_answer_wall_seconds) == (working, wall), case
        assert facts.answered_within_stage1 is within, case
        assert not facts.escalated_stage1 and not facts.escalated_stage2, case


COMPLETIONS = [
    ("sold", True),
    ("no_interest", True),
    ("bought_elsewhere", True),
    ("unreachable", False),
    ("spam", False),
]


def test_a_completion_counts_as_the_answer_only_when_its_reason_says_the_customer_was_reached(
    speed: SpeedStack,
) -> None:
    for day, (reason, answered) in enumerate(COMPLETIONS, start=1):
        lead = speed.arrive(f"2026-12-0{day}T10:00")  # Tuesday to Saturday: due at 12:00
        done = f"2026-12-0{day}T{'13' if day == 5 else '15'}:00"
        speed.complete(lead, done, reason)
        facts = speed.facts(lead)
        assert facts is not None
        assert facts.completed_at == berlin(done) and facts.completion_reason == reason
        working = 3 * HOUR if day == 5 else 5 * HOUR  # Saturday closes at 13:00
        assert (facts.completion_working_seconds, facts.completion_wall_seconds) == (working, working), reason
        if answered:
            assert facts.first_answer_kind == "completion", reason
            assert facts.first_answer_at == berlin(done) and facts.first_answer_working_seconds == working
        else:
            assert facts.first_answer_at is None and facts.first_answer_working_seconds is None, reason
        assert facts.answered_within_stage1 is False  # due at 12:00


def test_a_reply_before_the_completion_is_the_answer_and_reopening_keeps_an_answer(speed: SpeedStack) -> None:
    replied = speed.arrive("2026-11-30T10:00")
    speed.reply(replied, "2026-11-30T10:20")
    speed.complete(replied, "2026-11-30T16:00", "sold")
    facts = speed.facts(replied)
    assert facts is not None and facts.first_answer_kind == "reply"
    assert facts.first_answer_working_seconds == 20 * MIN and facts.completion_working_seconds == 6 * HOUR

    reached = speed.arrive("2026-12-01T09:00")
    speed.complete(reached, "2026-12-01T10:00", "sold")
    speed.reopen(reached, "2026-12-01T11:00")
    speed.reply(reached, "2026-12-01T12:00")
    facts = speed.facts(reached)
    assert facts is not None
    assert facts.first_answer_at == berlin("2026-12-01T10:00") and facts.first_answer_kind == "completion"
    assert facts.completed_at is None and facts.completion_reason is None  # open again


def test_escalations_that_fired_before_the_first_answer(speed: SpeedStack) -> None:
    lead = speed.arrive("2026-11-30T10:00")  # due 12:00; stage 2 four hours later
    quick = speed.arrive("2026-11-30T10:05")
    speed.reply(quick, "2026-11-30T10:30")
    speed.escalate("2026-11-30T11:30")  # the reminders
    speed.escalate("2026-11-30T12:05")  # stage 1 of both due: only the unanswered one fires
    facts = speed.facts(lead)
    assert facts is not None and facts.escalated_stage1 and not facts.escalated_stage2
    speed.escalate("2026-11-30T16:05")
    speed.reply(lead, "2026-11-30T17:00")
    facts = speed.facts(lead)
    assert facts is not None
    assert facts.escalated_stage1 and facts.escalated_stage2
    assert facts.first_answer_working_seconds == 7 * HOUR and not facts.answered_within_stage1
    assert facts.stage1_due_at == berlin("2026-11-30T12:00")
    answered = speed.facts(quick)
    assert answered is not None and not answered.escalated_stage1 and answered.answered_within_stage1


def test_the_seller_is_who_answered_or_while_unanswered_who_holds_the_lead(speed: SpeedStack) -> None:
    lead = speed.arrive("2026-11-30T10:00")  # the dealer routes every lead to anna
    facts = speed.facts(lead)
    assert facts is not None and facts.seller_id is not None
    anna = facts.seller_id
    speed.assign(lead, "2026-11-30T10:10", "ben")
    facts = speed.facts(lead)
    assert facts is not None and facts.seller_id not in (None, anna)
    ben = facts.seller_id
    speed.reply(lead, "2026-11-30T10:30")  # ben answers
    speed.assign(lead, "2026-11-30T11:00", "anna")  # and hands it back afterwards
    facts = speed.facts(lead)
    assert facts is not None and facts.seller_id == ben and facts.first_answer_by == ben
