"""When a dealer's weekly summary is due, and for which week. (Pure.)

It goes out at the first opening of the dealer's first working day of the week (a Monday that
is a public holiday or a closing day moves it to Tuesday, and so on), and covers the week
before: Monday 00:00 to Monday 00:00 in the dealer's time zone. A scheduler that was down then
catches up later in the same week; a week without any opening has no summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from models.business_calendar import BusinessCalendar, NeverOpen
from models.report_math import Period, iso_week


@dataclass(frozen=True)
class SummaryWeek:
    key: str  # the ISO week it is sent in, e.g. "2026-W49": one mail per person and key
    send_at: datetime
    period: Period  # the week it reports on


def summary_week(calendar: BusinessCalendar, now: datetime) -> SummaryWeek | None:
    """The summary due at ``now`` (``None`` before its time or in a week without openings)."""
    zone = calendar.zone
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    week_start = datetime.combine(monday, time(0), zone)
    next_week = datetime.combine(monday + timedelta(days=7), time(0), zone)
    try:
        send_at = calendar.next_opening(week_start)
    except NeverOpen:
        return None
    if send_at >= next_week or now < send_at:
        return None
    previous = datetime.combine(monday - timedelta(days=7), time(0), zone)
    return SummaryWeek(iso_week(monday), send_at, Period(previous, week_start))
