"""The lead type from German and English wording. (Pure.)

The subject says what the customer wants more reliably than the body, so it is read first.
Types are tried in a fixed order: a "Probefahrt mit Finanzierung" is a test drive.
"""

from __future__ import annotations

import re

_KEYWORDS: list[tuple[str, str]] = [
    ("test_drive", r"probefahrt|testfahrt|test[- ]?drive"),
    (
        "trade_in",
        r"inzahlungnahme|in zahlung|ankauf|fahrzeugbewertung|bewertung meines|trade[- ]?in|"
        r"verkaufe meinen|sell my car",
    ),
    ("financing", r"finanzierung|finanzieren|ratenkauf|ratenzahlung|kredit|financ(e|ing)|\bloan\b"),
    ("leasing", r"leasing|leasen|\blease\b"),
    (
        "service",
        r"werkstatt|inspektion|service[- ]?termin|wartung|reparatur|\btüv\b|hauptuntersuchung|"
        r"reifenwechsel|service appointment|\brepair\b|\bmaintenance\b",
    ),
    ("parts", r"ersatzteil|teileanfrage|zubehör|spare parts?|\bparts\b|accessor"),
    (
        "callback",
        r"rückruf|zurückrufen|rufen sie mich|call ?back|please call me|verpasster anruf|"
        r"angenommener anruf",
    ),
    ("new_car", r"neuwagen|neufahrzeug|new car|brand[- ]new"),
    ("used_car", r"gebrauchtwagen|gebrauchtfahrzeug|jahreswagen|used car|pre-owned"),
]
_COMPILED = [(kind, re.compile(pattern, re.I)) for kind, pattern in _KEYWORDS]


def type_from_text(subject: str, body: str) -> str | None:
    for text in (subject, body[:4000]):
        for kind, pattern in _COMPILED:
            if pattern.search(text):
                return kind
    return None
