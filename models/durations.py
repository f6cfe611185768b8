"""Durations as dealers write them: ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``, or ``"1h30m"``. (Pure.)"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    cleaned = text.strip().lower()
    if not cleaned or _PART.sub("", cleaned).strip():
        raise ValueError(f'{text!r} is no duration; write e.g. "90s", "30m", "2h" or "1d"')
    total = timedelta()
    for amount, unit in _PART.findall(cleaned):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total
