"""The arithmetic of the response-time report: periods in the dealer's time zone, percentiles
exactly as PostgreSQL's ``percentile_cont`` computes them, the buckets of the response-time
distribution, and the figures of one group of leads. (Pure.)"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_DAYS = 30

# Upper bounds (working seconds) of the distribution's buckets; answered later: "more".
BUCKETS: tuple[tuple[str, int], ...] = (
    ("15m", 15 * 60),
    ("30m", 30 * 60),
    ("1h", 3600),
    ("2h", 2 * 3600),
    ("4h", 4 * 3600),
    ("8h", 8 * 3600),
    ("24h", 24 * 3600),
)


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive
    end: datetime  # exclusive

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> Period:
        """The period of the same length just before (the comparison)."""
        return Period(self.start - self.length, self.start)


def period_of(*, now: datetime, timezone: str, first: date | None = None, last: date | None = None) -> Period:
    """``first``..``last`` as whole local days (both included); without dates the last 30 days up
    to now; with one of them, 30 days from or up to it."""
    zone = ZoneInfo(timezone)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), zone)

    if first is None and last is None:
        return Period(now - timedelta(days=DEFAULT_DAYS), now)
    if first is None:
        assert last is not None
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last is None:
        last = first + timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    return Period(midnight(first), midnight(last + timedelta(days=1)))


def percentile_cont(ordered: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the two nearest ranks of
    the sorted values (position ``fraction * (n - 1)``); ``None`` for no values."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = math.ceil(position)
    low, high = float(ordered[lower]), float(ordered[upper])
    return low + (high - low) * (position - lower)


def whole_seconds(value: float | None) -> int | None:
    """Seconds as reported: rounded half up, the same whichever database computed them."""
    return None if value is None else math.floor(value + 0.5)


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def bucket_of(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    for name, upper in BUCKETS:
        if seconds <= upper:
            return name
    return "more"


BUCKET_NAMES = (*(name for name, _ in BUCKETS), "more", "never")

# The counts of a group; medians and 90th percentiles come on top.
COUNTS = (
    "leads",
    "answered",
    "answered_within_stage1",
    "escalated_stage1",
    "escalated_stage2",
    "completed",
)


@dataclass
class Tally:
    """The figures of one group of leads, collected row by row (the SQLite way; PostgreSQL
    computes the same in SQL)."""

    leads: int = 0
    answered: int = 0
    answered_within_stage1: int = 0
    escalated_stage1: int = 0
    escalated_stage2: int = 0
    completed: int = 0

    def __post_init__(self) -> None:
        self.working: list[int] = []
        self.wall: list[int] = []
        self.reasons: dict[str, int] = {}

    def add(self, row: Mapping[str, Any]) -> None:
        self.leads += 1
        if row["first_answer_at"] is not None:
            self.answered += 1
            self.working.append(int(row["first_answer_working_seconds"]))
            self.wall.append(int(row["first_answer_wall_seconds"]))
        self.answered_within_stage1 += bool(row["answered_within_stage1"])
        self.escalated_stage1 += bool(row["escalated_stage1"])
        self.escalated_stage2 += bool(row["escalated_stage2"])
        if row["completed_at"] is not None:
            self.completed += 1
            code = row["completion_reason"] or "-"
            self.reasons[code] = self.reasons.get(code, 0) + 1

    def figures(self, *, wall: bool = False) -> dict[str, Any]:
        """``wall``: the wall-clock percentiles too (the report has them for its totals only)."""
        working, walls = sorted(self.working), sorted(self.wall) if wall else []
        return figures(
            {name: getattr(self, name) for name in COUNTS},
            median_working=percentile_cont(working, 0.5),
            p90_working=percentile_cont(working, 0.9),
            median_wall=percentile_cont(walls, 0.5),
            p90_wall=percentile_cont(walls, 0.9),
            reasons=self.reasons,
        )


def figures(
    counts: Mapping[str, int],
    *,
    median_working: float | None,
    p90_working: float | None,
    median_wall: float | None,
    p90_wall: float | None,
    reasons: Mapping[str, int],
) -> dict[str, Any]:
    """One group's figures in the report's JSON shape (INTERFACE.md ``lms report``)."""
    leads, answered = int(counts["leads"]), int(counts["answered"])
    within = int(counts["answered_within_stage1"])
    return {
        "leads": leads,
        "answered": answered,
        "answered_share": share(answered, leads),
        "answered_within_stage1": within,
        "within_stage1_share": share(within, leads),
        "never_answered": leads - answered,
        "median_first_answer_working_seconds": whole_seconds(median_working),
        "p90_first_answer_working_seconds": whole_seconds(p90_working),
        "median_first_answer_wall_seconds": whole_seconds(median_wall),
        "p90_first_answer_wall_seconds": whole_seconds(p90_wall),
        "escalated_stage1": int(counts["escalated_stage1"]),
        "escalated_stage2": int(counts["escalated_stage2"]),
        "completed": int(counts["completed"]),
        "completion_reasons": {code: n for code, n in sorted(reasons.items()) if n},
    }


def iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def tally_rows(rows: Iterable[Mapping[str, Any]], key: str) -> dict[Any, Tally]:
    groups: dict[Any, Tally] = {}
    for row in rows:
        groups.setdefault(row[key], Tally()).add(row)
    return groups


def human_duration(seconds: int | None) -> str:
    """A span of (working) time as people read it in a table or a mail: ``45 min``, ``3 h 05 min``."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return "< 1 min"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def percent(value: float | None, lang: str) -> str:
    if value is None:
        return "–"
    text = f"{value * 100:.0f}"
    return f"{text} %" if lang == "de" else f"{text}%"
