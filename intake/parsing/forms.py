"""Label/value pairs from web forms and portal mails, German and English. (Pure.)

Two shapes cover what portals and form mailers send: ``Label: value`` lines in text, and
two-cell rows in HTML tables. Labels are matched after lower-casing and stripping ``:``,
``*`` and surrounding space.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

LABELS: dict[str, tuple[str, ...]] = {
    "name": ("name", "ihr name", "kunde", "kundenname", "interessent", "full name", "your name", "customer"),
    "first_name": ("vorname", "first name", "firstname", "given name"),
    "last_name": ("nachname", "familienname", "last name", "lastname", "surname", "family name"),
    "salutation": ("anrede", "salutation"),
    "email": (
        "e-mail",
        "email",
        "e-mail-adresse",
        "e-mail adresse",
        "email address",
        "e-mail address",
        "mail",
    ),
    "phone": ("telefon", "tel", "tel.", "telefonnummer", "rufnummer", "phone", "phone number", "telephone"),
    "mobile": (
        "mobil",
        "mobilnummer",
        "mobiltelefon",
        "handy",
        "mobile",
        "mobile phone",
        "cell",
        "cell phone",
    ),
    "vehicle": ("fahrzeug", "vehicle", "auto", "inserat", "angebot", "car", "fahrzeugbezeichnung"),
    "make": ("marke", "hersteller", "make", "brand", "manufacturer"),
    "model": ("modell", "model"),
    "price": ("preis", "verkaufspreis", "kaufpreis", "price", "asking price"),
    "message": (
        "nachricht",
        "ihre nachricht",
        "mitteilung",
        "kommentar",
        "bemerkung",
        "anmerkungen",
        "message",
        "your message",
        "comments",
        "comment",
        "anfrage",
        "enquiry",
        "inquiry",
    ),
    "first_registration": ("erstzulassung", "ez", "first registration", "registration date"),
    "mileage": ("kilometerstand", "km-stand", "laufleistung", "mileage", "odometer"),
    "year": ("baujahr", "modelljahr", "year", "model year"),
    "vin": ("fin", "fahrgestellnummer", "fahrzeug-identifikationsnummer", "vin"),
    "stock": ("interne nummer", "fahrzeugnummer", "bestandsnummer", "stock number", "stock no", "stock"),
    "street": ("straße", "strasse", "street", "adresse", "address"),
    "postal_code": ("plz", "postleitzahl", "zip", "zip code", "postal code", "postcode"),
    "city": ("ort", "stadt", "wohnort", "city", "town"),
    "link": ("link", "url", "inserat-url", "fahrzeuglink", "listing"),
}
_BY_LABEL = {label: key for key, labels in LABELS.items() for label in labels}
_LINE = re.compile(r"^\s*([^:\n]{1,40}?)\s*\*?\s*:\s*(.*?)\s*$")


def field_for(label: str) -> str | None:
    cleaned = " ".join(label.replace("*", " ").split()).strip(" :.-").lower()
    return _BY_LABEL.get(cleaned)


def fields_from_text(text: str) -> dict[str, str]:
    """``Label: value`` lines; a message label with nothing after it takes the lines below
    it until the next known label."""
    found: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _LINE.match(lines[index])
        key = field_for(match.group(1)) if match else None
        index += 1
        if not match or key is None:
            continue
        value = match.group(2)
        if key == "message" and not value:
            block: list[str] = []
            while index < len(lines):
                nxt = _LINE.match(lines[index])
                if nxt and field_for(nxt.group(1)):
                    break
                block.append(lines[index].rstrip())
                index += 1
            value = "\n".join(block).strip()
        if value and key not in found:
            found[key] = value.strip()
    return found


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cells: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._cells = []
        elif tag in ("td", "th") and self._cells is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cells is not None and self._cell is not None:
            self._cells.append(
                "\n".join(" ".join(p.split()) for p in "".join(self._cell).split("\n")).strip()
            )
            self._cell = None
        elif tag == "tr" and self._cells is not None:
            self.rows.append(self._cells)
            self._cells = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def fields_from_html(html: str) -> dict[str, str]:
    parser = _Rows()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # broken HTML: take what was read
        pass
    found: dict[str, str] = {}
    for cells in parser.rows:
        cells = [c for c in cells if c]
        if len(cells) >= 2:
            key = field_for(cells[0])
            if key and key not in found:
                found[key] = cells[1]
    return found
