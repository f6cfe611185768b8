"""The customer's own words in a mail: above the quoted text, the forwarded headers and our
footer; and the name they sign with. (Pure.)

Phone numbers and vehicle names are read from this part only: the dealer's signature in a
quoted answer, or our own footer, must never become the customer's number.
"""

from __future__ import annotations

import re

# Where a quote or a forwarded mail begins, as the common clients write it.
QUOTE_START = re.compile(
    r"^(>|-{2,} ?(original|ursprüngliche|forwarded|weitergeleitete|message d'origine|messaggio originale|"
    r"oorspronkelijk|mensaje original)|_{8,}|"
    r"am .{5,120}(schrieb|geschrieben)|on .{5,120}wrote|le .{5,120}a écrit|il .{5,120}ha scritto|"
    r"op .{5,120}schreef|el .{5,120}escribió|"
    r"(von|from|gesendet|sent|de|envoyé|da|inviato|van|verzonden|enviado)\s*:\s)",
    re.I,
)
# "-- " starts a signature block (RFC 3676 §4.3); the customer's own signature we keep, but
# a footer we wrote (legal footer of an autoresponse quoted back) starts with our marks.
_CLOSING = re.compile(
    r"^(mit\s+)?(freundlichen|besten|herzlichen|lieben|liebe|viele|vielen|beste|schöne|sonnige|"
    r"freundliche)?\s*(grüßen|grüße|gruß|gruss|grüssen|grüsse|dank)\b[.,!]*\s*(?P<rest>.*)$|"
    r"^(mfg|lg|vg|bg)\b[.,!]*\s*(?P<rest2>.*)$|"
    r"^((best|kind|warm|many)\s+)?(regards|wishes|thanks)\b[.,!]*\s*(?P<rest3>.*)$|"
    r"^(cheers|thank you|danke|cordialement|saluti|cordiali saluti|met vriendelijke groet(en)?|groeten|"
    r"saludos|un saludo|atentamente)\b[.,!]*\s*(?P<rest4>.*)$",
    re.I,
)
_NAME = re.compile(
    r"^(?:(?:Dr|Prof|Dipl)\.?-?\w*\.?\s+)?"
    r"([A-ZÄÖÜÀ-Þ][a-zäöüßà-ÿ'’]+(?:-[A-ZÄÖÜÀ-Þ][a-zäöüßà-ÿ]+)?)"
    r"((?:\s+(?:von|van|de|der|den|zu|di|da|le|la)?\s*[A-ZÄÖÜÀ-Þ][a-zäöüßà-ÿ'’]+(?:-[A-ZÄÖÜÀ-Þ][a-zäöüßà-ÿ]+)?){0,3})$"
)
_NOT_NAMES = {
    "Ihr",
    "Ihre",
    "Euer",
    "Eure",
    "Dein",
    "Deine",
    "Team",
    "Autohaus",
    "Gesendet",
    "Sent",
    "Mobil",
    "Tel",
    "Telefon",
    "Handy",
    "Von",
    "From",
    "Grüße",
    "Gruß",
    "Danke",
    "Thanks",
    "Regards",
    "Hallo",
    "Guten",
}
_TEXT_LIMIT = 8000


def own_text(text: str) -> str:
    """The lines before the first quoted or forwarded part."""
    kept: list[str] = []
    for line in text[:_TEXT_LIMIT].splitlines():
        if QUOTE_START.match(line.strip()):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def _as_name(line: str) -> str:
    line = " ".join(line.replace(",", " ").split()).strip(" .-")
    match = _NAME.match(line)
    if not match or len(line) > 60:
        return ""
    words = line.split()
    if words[0] in _NOT_NAMES or any(w in _NOT_NAMES for w in words[1:2]):
        return ""
    return line


def signature_name(text: str) -> str:
    """The name under a closing ("Viele Grüße\\nErika Mustermann", "Gruß Jonas")."""
    lines = [line.strip() for line in text.splitlines()]
    for index in range(len(lines) - 1, -1, -1):
        match = _CLOSING.match(lines[index])
        if not match:
            continue
        rest = next((g for g in match.group("rest", "rest2", "rest3", "rest4") if g), "")
        if rest:
            name = _as_name(rest)
            if name:
                return name
        for following in lines[index + 1 : index + 3]:
            if following in ("", "--"):
                continue
            return _as_name(following)
        return ""
    return ""
