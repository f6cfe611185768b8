"""Prices and counts as people write them, German and English. (Pure.)"""

from __future__ import annotations

import re

_DECIMAL_TAIL = re.compile(r"[.,](\d{1,2})$")


def parse_price(text: str) -> float | None:
    """``18.900 €``, ``18.900,00``, ``18,900.50``, ``12345.67``, ``18.900,-`` → a number.

    A separator followed by one or two final digits is the decimal point; every other
    separator groups thousands (German writes ``.`` for that, English ``,``).
    """
    cleaned = re.sub(r"[^\d.,]", "", re.sub(r"[.,]-+\s*$", "", text.strip()))
    if not re.search(r"\d", cleaned):
        return None
    tail = _DECIMAL_TAIL.search(cleaned)
    whole, fraction = (cleaned[: tail.start()], tail.group(1)) if tail else (cleaned, "")
    digits = re.sub(r"[.,]", "", whole)
    try:
        return float(f"{digits or 0}.{fraction or 0}")
    except ValueError:
        return None


def parse_count(text: str, *, max_digits: int = 11) -> int | None:
    """``88.000 km`` → 88000; ``None`` when there are no digits or implausibly many."""
    digits = re.sub(r"\D", "", text or "")
    return int(digits) if digits and len(digits) <= max_digits else None
