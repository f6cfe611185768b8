"""A dealer's working time: opening blocks per weekday, public holidays, own closing days,
in the dealer's time zone. (Pure.)

Block boundaries are local wall-clock times, built afresh for each date, so a block on the
day of a daylight-saving change is as long as the clock says it is: "00:00-24:00" on the last
Sunday of March is 23 hours. Durations are added in elapsed time, from block to block.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays as holidays_lib

if TYPE_CHECKING:  # the schema's types only: a pure rule does not load configuration
    from models.dealer_config import HoursConfig


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 3 * 366  # a calendar with no opening in three years is a configuration error


class NeverOpen(Exception):
    """The calendar has no opening time within the search horizon."""


def parse_blocks(spec: str | None) -> tuple[tuple[time, time | None], ...]:
    """``"08:00-12:30, 13:30-18:00"`` → ((08:00, 12:30), (13:30, 18:00)); ``None`` ends at midnight."""
    if not spec:
        return ()
    blocks = []
    for block in spec.split(","):
        start, _, end = block.strip().partition("-")
        blocks.append((time.fromisoformat(start), None if end == "24:00" else time.fromisoformat(end)))
    return tuple(sorted(blocks, key=lambda b: b[0]))


@lru_cache(maxsize=256)
def _public_holidays(code: str, year: int) -> frozenset[date]:
    country, _, subdivision = code.partition("-")
    return frozenset(holidays_lib.country_holidays(country, subdiv=subdivision or None, years=year))


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str
    hours: Mapping[str, tuple[tuple[time, time | None], ...]]
    holidays: str | None = None  # "DE-BY": country[-subdivision] of the holidays package
    closed: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def from_schema(cls, timezone: str, hours: HoursConfig) -> BusinessCalendar:
        return cls(
            timezone=timezone,
            hours={day: parse_blocks(getattr(hours, day)) for day in DAYS},
            holidays=hours.holidays,
            closed=frozenset(hours.closed),
        )

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_closed_day(self, day: date) -> bool:
        if day in self.closed:
            return True
        return bool(self.holidays) and day in _public_holidays(str(self.holidays), day.year)

    def blocks_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The opening blocks of a local date as UTC instants; none on a closed day."""
        if self.is_closed_day(day):
            return []
        zone = self.zone
        result = []
        for start, end in self.hours.get(DAYS[day.weekday()], ()):
            begin = datetime.combine(day, start, zone).astimezone(UTC)
            finish = (
                datetime.combine(day + timedelta(days=1), time(0), zone)
                if end is None
                else datetime.combine(day, end, zone)
            ).astimezone(UTC)
            if finish > begin:
                result.append((begin, finish))
        return result

    def _blocks_from(self, instant: datetime) -> Iterator[tuple[datetime, datetime]]:
        day = instant.astimezone(self.zone).date()
        for offset in range(SEARCH_DAYS):
            for begin, end in self.blocks_on(day + timedelta(days=offset)):
                if end > instant:
                    yield max(begin, instant), end
        raise NeverOpen(f"no opening time within {SEARCH_DAYS} days of {instant.isoformat()}")

    def is_open(self, instant: datetime) -> bool:
        return any(
            begin <= instant < end for begin, end in self.blocks_on(instant.astimezone(self.zone).date())
        )

    def next_opening(self, instant: datetime) -> datetime:
        """``instant`` itself when open, else the start of the next opening block."""
        begin, _ = next(self._blocks_from(instant))
        return begin

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """The working time between two instants: the parts of opening blocks that lie between
        them (nothing at night, on closed days and holidays; a DST day counts as the clock says).
        ``end`` before ``start`` is no time at all."""
        if end <= start:
            return timedelta(0)
        total = timedelta(0)
        zone = self.zone
        day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        while day <= last:
            for begin, finish in self.blocks_on(day):
                overlap = min(finish, end) - max(begin, start)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when ``duration`` of working time has passed since ``start``. Time
        outside opening hours does not count; a start at night counts from the next opening."""
        remaining = duration
        for begin, end in self._blocks_from(start):
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin
        raise NeverOpen("unreachable")  # _blocks_from raises first
