"""The vehicle a customer names in free text ("Leasing für den Kodiaq", "Ihr VW Golf 8").
(Pure.) Names come from :mod:`intake.parsing.vehicle_catalogue`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from intake.parsing.vehicle_catalogue import ALONE, MAKES, MODELS

_TEXT_LIMIT = 4000
# How far after the make its model may stand ("VW Golf", "Skoda Octavia Combi RS", "BMW X3 xDrive").
_MODEL_WINDOW = 40


@dataclass(frozen=True)
class NamedVehicle:
    make: str
    model: str


def _alternation(names: list[str], suffix: str = "") -> str:
    parts = sorted(set(names), key=len, reverse=True)
    # Word edges that also hold next to "-", ".", digits and umlauts ("ID.3", "Škoda").
    return r"(?<![\w-])(" + "|".join(re.escape(p) for p in parts) + r")" + suffix + r"(?![\w-])"


# Engine letters written onto a model ("C 220d", "320i", "A4 TDI" is a separate word anyway).
_ENGINE_SUFFIX = r"(?:d|i|e|h|td|cdi)?"


@lru_cache(maxsize=1)
def _tables() -> tuple[
    re.Pattern[str],
    dict[str, str],
    dict[str, tuple[re.Pattern[str], dict[str, str]]],
    re.Pattern[str],
    dict[str, tuple[str, str]],
]:
    make_of = {alias.casefold(): make for make, aliases in MAKES.items() for alias in aliases}
    makes = re.compile(_alternation([a for aliases in MAKES.values() for a in aliases]), re.I)
    per_make: dict[str, tuple[re.Pattern[str], dict[str, str]]] = {}
    alone: dict[str, tuple[str, str]] = {}
    for make, models in MODELS.items():
        canonical: dict[str, str] = {}
        for entry in models:
            names = [n for n in entry if n != ALONE]
            for name in names:
                canonical[name] = names[0]
                if ALONE in entry and len(name) >= 4:
                    alone[name.casefold()] = (make, names[0])
        per_make[make] = (re.compile(_alternation(list(canonical), _ENGINE_SUFFIX), re.I), canonical)
    alone_pattern = re.compile(_alternation(list(alone)), re.I)
    return makes, make_of, per_make, alone_pattern, alone


def _canonical(canonical: dict[str, str], written: str) -> str:
    folded = written.casefold()
    return next((name for alias, name in canonical.items() if alias.casefold() == folded), written)


def vehicle_in_text(text: str) -> NamedVehicle | None:
    """The first make (with its model when one follows) or, without a make, the first model
    that names its make by itself."""
    text = text[:_TEXT_LIMIT]
    makes, make_of, per_make, alone_pattern, alone = _tables()
    for match in makes.finditer(text):
        make = make_of[match.group(1).casefold()]
        if (
            match.group(1) in ("MB", "Alfa", "Mini", "Smart", "Seat", "DS")
            and not match.group(1)[0].isupper()
        ):
            continue
        pattern, canonical = per_make[make]
        window = text[match.end() : match.end() + _MODEL_WINDOW]
        model = pattern.search(window)
        if model is None:
            # "Golf von VW": the model may also stand just before the make.
            before = text[max(0, match.start() - _MODEL_WINDOW) : match.start()]
            found = list(pattern.finditer(before))
            model = found[-1] if found else None
        return NamedVehicle(make, _canonical(canonical, model.group(1)) if model else "")
    alone_match = alone_pattern.search(text)
    if alone_match:
        make, model_name = alone[alone_match.group(1).casefold()]
        return NamedVehicle(make, model_name)
    return None
