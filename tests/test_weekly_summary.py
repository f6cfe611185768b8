"""The weekly summary mail: on the dealer's first working day of the week, to each supervisor (their
team) and admin (the dealer), exactly once per person and week, through the outbox to a real SMTP
sink; a person opts out; a Monday holiday moves it to Tuesday."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models.business_calendar import BusinessCalendar
from models.dealer_config import HoursConfig
from models.tables import OutboundMessage, User
from models.weekly_summary import summary_week
from tests.support.services import wait_until
from tests.support.sink import SmtpSink
from tests.support.speed import BERLIN, SpeedStack, berlin
from workers.weekly_summary import set_preference


def calendar(**extra: object) -> BusinessCalendar:
    week = {day: "08:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")}
    return BusinessCalendar.from_schema("Europe/Berlin", HoursConfig.model_validate({**week, **extra}))


@pytest.mark.parametrize(
    ("case", "now", "key", "send_at"),
    [
        ("Monday before opening: not yet", "2026-11-30T07:59", None, None),
        ("Monday at opening", "2026-11-30T08:00", "2026-W49", "2026-11-30T08:00"),
        ("later that week: catches up", "2026-12-03T15:00", "2026-W49", "2026-11-30T08:00"),
        ("Sunday: still the same week's", "2026-12-06T23:00", "2026-W49", "2026-11-30T08:00"),
        ("Easter Monday (DE-BY) is a holiday: Tuesday", "2026-04-06T12:00", None, None),
        ("… the Tuesday after Easter", "2026-04-07T08:00", "2026-W15", "2026-04-07T08:00"),
    ],
)
def test_the_first_working_day_of_the_week(case: str, now: str, key: str | None, send_at: str | None) -> None:
    week = summary_week(calendar(holidays="DE-BY"), berlin(now))
    if key is None:
        assert week is None, case
        return
    assert week is not None and week.key == key and week.send_at == berlin(send_at or ""), case
    assert week.period.end - week.period.start == timedelta(days=7)
    monday = berlin(now).astimezone(BERLIN).date()
    monday -= timedelta(days=monday.weekday())
    assert week.period.end == berlin(f"{monday}T00:00"), "up to this week's Monday, 00:00"


def test_a_week_without_any_opening_has_no_summary() -> None:
    closed = calendar(closed=[f"2026-12-{day}" for day in range(14, 19)])
    assert summary_week(closed, berlin("2026-12-18T12:00")) is None


def test_supervisors_and_admins_get_it_once_a_week_with_their_teams_figures(
    db_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    speed = SpeedStack(
        db_url, outbox=tmp_path, start="2026-11-23T08:00", worker_threads=1, relay_url=sink.url
    )
    try:
        # Monday 23 November, 08:00, the dealer's first day with us: no summary of a week it
        # was not here for.
        assert speed.runtime.weekly_summaries_once().outbound_ids == []
        anna = speed.arrive("2026-11-23T09:00")  # max's team
        speed.reply(anna, "2026-11-23T09:30")
        slow = speed.arrive("2026-11-24T10:00", sender="Sabine Wolf <sabine@example.org>")  # never answered
        carl = speed.arrive("2026-11-25T11:00")
        speed.assign(carl, "2026-11-25T11:01", "carl")  # lisa's team: lisa opted out in the dealer file
        speed.reply(carl, "2026-11-25T15:00", as_user="carl")
        with speed.db.session() as session:
            ids = {u.username: u for u in session.scalars(select(User))}
            set_preference(session, ids["olga"], False, now=speed.clock())  # olga opts out on the page…
            set_preference(session, ids["olga"], True, now=speed.clock())  # … and in again

        speed.at("2026-11-29T20:00")  # Sunday: still nothing for this week
        assert speed.runtime.weekly_summaries_once().outbound_ids == []
        speed.at("2026-11-30T07:59")  # Monday before the opening: not yet
        assert speed.runtime.weekly_summaries_once().outbound_ids == []
        speed.at("2026-11-30T08:00")  # Monday's opening
        result = speed.runtime.weekly_summaries_once()
        assert len(result.outbound_ids) == 2 and "lisa: opted out" in result.skipped
        speed.at("2026-11-30T08:05")
        assert speed.runtime.weekly_summaries_once().outbound_ids == []  # once per person and week

        def delivered(address: str) -> str:
            wait_until(lambda: len(sink.to(address)) == 1, what=f"the summary to {address}")
            mail = sink.to(address)[-1]
            assert str(mail.message["Subject"]).startswith("Wochenbericht 2026-W49: ")
            return mail.message.get_body(("plain",)).get_content()  # type: ignore[no-any-return, union-attr]

        to_max = delivered("max@autohaus-muster.example")
        assert sink.to("max@autohaus-muster.example")[-1].message["Subject"] == (
            "Wochenbericht 2026-W49: 2 Leads, 50 % beantwortet"
        )
        assert "vom 23.11.2026 bis 29.11.2026" in to_max
        assert "Anna Berger: 2 Leads, 50 % beantwortet, Median 30 min" in to_max
        assert "Carl" not in to_max  # another team's
        assert f"Lead #{slow} Sabine Wolf (anna)" in to_max  # the slowest open lead
        assert "Median:        30 min" in to_max.replace("Erste Antwort, ", "")
        to_olga = delivered("olga@autohaus-muster.example")
        assert "Leads:                        3" in to_olga and "Carl Clausen: 1 Leads" in to_olga
        assert "Der ganze Bericht: http://127.0.0.1:8025/reports" in to_olga
        assert sink.to("lisa@autohaus-muster.example") == []
        with speed.db.read() as session:
            kinds = session.scalars(select(OutboundMessage.kind).where(OutboundMessage.lead_id.is_(None)))
            assert list(kinds) == ["weekly_summary"] * 2  # two people, once

        # A second scheduler (another process, nothing remembered) writes nothing twice.
        speed.runtime.weekly._done.clear()
        assert speed.runtime.weekly_summaries_once().outbound_ids == []
        speed.at("2026-12-07T08:00")  # the next week: again
        assert len(speed.runtime.weekly_summaries_once().outbound_ids) == 2
    finally:
        speed.close()
