"""The silence alarm (Zammad's "amount check"): fewer leads than a dealer's floor, or than it
usually gets at this weekday and hour, is the sign that a portal changed its format, a DNS
record broke or a mailbox filter eats mail: nothing fails, mail just stops becoming leads.

Pure: ``count(start, end)`` (leads created in ``[start, end)``, probe leads excluded) and ``now``
come from the caller. Windows are in the dealer's wall-clock time, so a week earlier is the
same local hour across a DST change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from statistics import mean

from models.business_calendar import BusinessCalendar
from models.dealer_config import ExpectationConfig, LeadFloor
from models.durations import parse_duration
from models.health import Issue

Counter = Callable[[datetime, datetime], int]
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far back the last closed window of a floor is looked for (a long holiday season).
FLOOR_LOOKBACK_DAYS = 21


def _clock(value: str) -> time:
    return time(0) if value == "24:00" else time.fromisoformat(value)


def _window_on(day: date, hours: str, calendar: BusinessCalendar) -> tuple[datetime, datetime]:
    start_s, end_s = hours.split("-")
    start = datetime.combine(day, _clock(start_s), calendar.zone)
    end_day = day + timedelta(days=1) if end_s == "24:00" else day
    return start, datetime.combine(end_day, _clock(end_s), calendar.zone)


def _floor_applies(floor: LeadFloor, day: date, calendar: BusinessCalendar) -> bool:
    if floor.days == "working":
        return not calendar.is_closed_day(day) and bool(calendar.blocks_on(day))
    return DAY_NAMES[day.weekday()] in floor.days


def last_closed_window(
    floor: LeadFloor, calendar: BusinessCalendar, now: datetime
) -> tuple[datetime, datetime] | None:
    """The latest window of this floor that has ended by ``now``."""
    today = now.astimezone(calendar.zone).date()
    for back in range(FLOOR_LOOKBACK_DAYS + 1):
        day = today - timedelta(days=back)
        if not _floor_applies(floor, day, calendar):
            continue
        start, end = _window_on(day, floor.hours, calendar)
        if end <= now:
            return start, end
    return None


def floor_issues(
    dealer: str,
    floors: list[LeadFloor],
    calendar: BusinessCalendar,
    *,
    now: datetime,
    count: Counter,
    since: datetime,
) -> list[Issue]:
    """Each floor is judged on its latest closed window (that began after ``since``, when the
    dealer's mail started flowing): the alarm stands until the next window proves otherwise."""
    issues = []
    for floor in floors:
        window = last_closed_window(floor, calendar, now)
        if window is None or window[0] < since:
            continue
        got = count(*window)
        if got < floor.count:
            start, end = window
            issues.append(
                Issue(
                    "leads_below_floor",
                    "critical",
                    f"dealer {dealer} got {got} lead(s) on {start.date().isoformat()} between "
                    f"{floor.hours}, at least {floor.count} expected: is mail still arriving and "
                    "being recognised?",
                    dealer,
                    {"window": [start.isoformat(), end.isoformat()], "leads": got, "floor": floor.count},
                )
            )
    return issues


def expected_leads(
    config: ExpectationConfig,
    zone_now: datetime,
    *,
    count: Counter,
    since: datetime,
    calendar: BusinessCalendar | None = None,
) -> tuple[float, int] | None:
    """The mean of leads in the same weekday-and-hours window over the last weeks in which the
    dealer already received mail, and how many weeks that mean is over (None: no history).
    A week whose day was a holiday or closed day is no example of a normal one: left out."""
    length = parse_duration(config.window)
    counts = []
    for week in range(1, config.weeks + 1):
        end = zone_now - timedelta(weeks=week)  # wall-clock arithmetic in the dealer's zone
        start = end - length
        if start < since:
            break
        if calendar is not None and calendar.is_closed_day(end.date()):
            continue
        counts.append(count(start, end))
    if not counts:
        return None
    return mean(counts), len(counts)


def expectation_issue(
    dealer: str,
    config: ExpectationConfig,
    calendar: BusinessCalendar,
    *,
    now: datetime,
    count: Counter,
    since: datetime,
) -> Issue | None:
    zone_now = now.astimezone(calendar.zone)
    if calendar.is_closed_day(zone_now.date()):
        return None  # a holiday or closed day: fewer leads than on a normal one is expected
    found = expected_leads(config, zone_now, count=count, since=since, calendar=calendar)
    if found is None:
        return None
    expected, weeks = found
    if expected < config.min_expected:
        return None  # too few to tell silence from chance
    length = parse_duration(config.window)
    got = count(zone_now - length, zone_now)
    if got >= config.ratio * expected:
        return None
    return Issue(
        "leads_below_expectation",
        "warning",
        f"dealer {dealer} got {got} lead(s) in the last {config.window}, usually {expected:.1f} at this "
        f"weekday and hour (mean of {weeks} week(s)): is mail still arriving and being recognised?",
        dealer,
        {"leads": got, "expected": round(expected, 2), "weeks": weeks},
    )
