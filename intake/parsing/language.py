"""German or English? A stop-word count is enough for enquiries. (Pure.)"""

from __future__ import annotations

import re

_DE = {
    "der",
    "die",
    "das",
    "und",
    "ich",
    "ist",
    "nicht",
    "ein",
    "eine",
    "mit",
    "für",
    "auf",
    "sie",
    "ihr",
    "ihre",
    "wir",
    "bitte",
    "gerne",
    "haben",
    "hätte",
    "möchte",
    "noch",
    "zu",
    "von",
    "guten",
    "tag",
    "vielen",
    "dank",
    "grüße",
    "freundlichen",
}
_EN = {
    "the",
    "and",
    "i",
    "is",
    "not",
    "a",
    "an",
    "with",
    "for",
    "on",
    "you",
    "your",
    "we",
    "please",
    "would",
    "like",
    "have",
    "to",
    "of",
    "hello",
    "dear",
    "thanks",
    "thank",
    "regards",
    "kind",
    "interested",
}


def detect_language(text: str) -> str:
    words = re.findall(r"[a-zäöüß]+", text.lower())[:400]
    de = sum(w in _DE for w in words)
    en = sum(w in _EN for w in words)
    if max(de, en) < 2:
        return ""
    return "de" if de >= en else "en"
