"""The plain data a template sees: dealer, editor, contact (with a salutation), lead, vehicle,
and the labels of the mail's language.

Plain dicts and strings only: the sandbox must never get an ORM object, whose methods would
stay reachable from a template. Built inside the transaction that read the rows, so rendering
can happen after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from models.dealer_config import DealerConfig
from models.tables import Contact, Lead, User
from templates_email import labels
from workers.render.mime import header_safe

EDITOR_FIELDS = ("name", "email", "phone", "title")
VEHICLE_FIELDS = ("make", "model", "year", "price", "vin")


def salutation(name: str | None, lang: str) -> str:
    greeting = str(labels(lang)["greeting"])
    name = header_safe(name or "")
    return f"{greeting} {name}" if name else greeting


def vehicle_label(vehicle: dict[str, Any]) -> str:
    return str(vehicle.get("label") or " ".join(str(vehicle[k]) for k in ("make", "model") if vehicle.get(k)))


def local_time(moment: datetime | None, timezone: str, lang: str) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(timezone)).strftime(str(labels(lang)["date_time"]))


def _vehicle(vehicle: dict[str, Any]) -> dict[str, Any]:
    label = vehicle_label(vehicle)
    return {
        "label": label,
        "text": f"{label} ({vehicle['year']})" if label and vehicle.get("year") else label,
        **{k: ("" if vehicle.get(k) is None else vehicle[k]) for k in VEHICLE_FIELDS},
    }


def person(user: User | None) -> dict[str, str]:
    if user is None:
        return dict.fromkeys(EDITOR_FIELDS, "")
    return {"name": user.name, "email": user.email, "phone": "", "title": ""}


def lead_context(
    dealer: DealerConfig, lead: Lead, contact: Contact, editor: User | None, lang: str
) -> dict[str, Any]:
    words = labels(lang)
    customer = " ".join(
        p
        for p in (contact.name or "", f"<{contact.email}>" if contact.email else "", contact.phone or "")
        if p
    )
    return {
        "dealer": {"id": dealer.id, "name": dealer.name, "email": dealer.sender_address},
        "editor": person(editor),
        "contact": {
            "name": contact.name or "",
            "first_name": (contact.details or {}).get("first_name", ""),
            "last_name": (contact.details or {}).get("last_name", ""),
            "email": contact.email or "",
            "phone": contact.phone or "",
            "salutation": salutation(contact.name, lang),
        },
        "lead": {
            "id": lead.id,
            "type": lead.type,
            "type_label": words["lead_types"].get(lead.type, lead.type),
            "subject": lead.subject or "",
            "source": lead.source.name if lead.source else "",
            "message": lead.message or "",
            "due": local_time(lead.due_at, dealer.timezone, lang),
            "customer": customer,
            "who": contact.name or contact.email or contact.phone or "?",
        },
        "vehicle": _vehicle(lead.vehicle or {}),
        "labels": words,
    }


def sample_context(dealer: DealerConfig, lang: str, *, placeholders: bool) -> dict[str, Any]:
    """Data for ``config check`` and ``templates preview``: the dealer's own, the rest either
    realistic samples or visible placeholders such as ``[contact.name]``."""

    def value(path: str, sample: Any) -> Any:
        return f"[{path}]" if placeholders else sample

    seller = next((u for u in dealer.users if u.role == "seller"), dealer.users[0] if dealer.users else None)
    name = value("contact.name", "Erika Mustermann")
    words = labels(lang)
    return {
        "dealer": {"id": dealer.id, "name": dealer.name, "email": dealer.sender_address},
        "editor": {
            "name": seller.name if seller else value("editor.name", "Max Muster"),
            "email": seller.email if seller else value("editor.email", "max@example.com"),
            "phone": "",
            "title": "",
        },
        "contact": {
            "name": name,
            "first_name": value("contact.first_name", "Erika"),
            "last_name": value("contact.last_name", "Mustermann"),
            "email": value("contact.email", "erika@example.org"),
            "phone": value("contact.phone", "+4917612345678"),
            "salutation": salutation(name, lang),
        },
        "lead": {
            "id": 0,
            "type": "test_drive",
            "type_label": words["lead_types"]["test_drive"],
            "subject": value("lead.subject", "Probefahrt VW Golf"),
            "source": value("lead.source", "mobile.de"),
            "message": value("lead.message", "Ist der Golf noch zu haben?"),
            "due": value("lead.due", "30.11.2026 11:00"),
            "customer": value("lead.customer", "Erika Mustermann <erika@example.org>"),
            "who": name,
        },
        "vehicle": {
            "label": value("vehicle.label", "VW Golf 1.5 TSI"),
            "text": value("vehicle.text", "VW Golf 1.5 TSI (2021)"),
            "make": value("vehicle.make", "VW"),
            "model": value("vehicle.model", "Golf 1.5 TSI"),
            "year": value("vehicle.year", 2021),
            "price": value("vehicle.price", 18900),
            "vin": value("vehicle.vin", "WVWZZZ1KZ6W000001"),
        },
        "labels": words,
    }
