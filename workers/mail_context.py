"""The plain data a template sees: dealer, editor, contact (with a salutation), lead, vehicle.

Plain dicts and strings only: the sandbox must never get an ORM object, whose methods would
stay reachable from a template.
"""

from __future__ import annotations

from typing import Any

from models.tables import Contact, Dealer, Lead, User
from workers.compose import salutation

EDITOR_FIELDS = ("name", "email", "phone", "title")


def vehicle_label(vehicle: dict[str, Any]) -> str:
    return str(vehicle.get("label") or " ".join(str(vehicle[k]) for k in ("make", "model") if vehicle.get(k)))


def context_for(
    dealer: Dealer, lead: Lead, contact: Contact, editor: User | None, lang: str
) -> dict[str, Any]:
    vehicle = lead.vehicle or {}
    return {
        "dealer": {"id": dealer.id, "name": dealer.name, "email": dealer.from_address},
        "editor": {"name": editor.name, "email": editor.email, "phone": "", "title": ""}
        if editor
        else dict.fromkeys(EDITOR_FIELDS, ""),
        "contact": {
            "name": contact.name or "",
            "first_name": (contact.details or {}).get("first_name", ""),
            "last_name": (contact.details or {}).get("last_name", ""),
            "email": contact.email or "",
            "phone": contact.phone or "",
            "salutation": salutation(contact.name, lang),
        },
        "lead": {"id": lead.id, "type": lead.type, "subject": lead.subject or "", "source": ""},
        "vehicle": {
            "label": vehicle_label(vehicle),
            **{
                k: ("" if vehicle.get(k) is None else vehicle[k])
                for k in ("make", "model", "year", "price", "vin")
            },
        },
    }


def sample_context(dealer: dict[str, Any], lang: str, *, placeholders: bool) -> dict[str, Any]:
    """Data for ``config check`` and ``templates preview``: the dealer's own, the rest either
    realistic samples or visible placeholders such as ``[contact.name]``."""

    def value(path: str, sample: Any) -> Any:
        return f"[{path}]" if placeholders else sample

    users = dealer.get("users") or []
    seller = next((u for u in users if u.get("role", "seller") == "seller"), users[0] if users else None)
    name = value("contact.name", "Erika Mustermann")
    return {
        "dealer": {"id": dealer["id"], "name": dealer["name"], "email": dealer.get("from_address") or ""},
        "editor": {
            "name": seller["name"] if seller else value("editor.name", "Max Muster"),
            "email": seller["email"] if seller else value("editor.email", "max@example.com"),
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
            "subject": value("lead.subject", "Probefahrt VW Golf"),
            "source": "",
        },
        "vehicle": {
            "label": value("vehicle.label", "VW Golf 1.5 TSI"),
            "make": value("vehicle.make", "VW"),
            "model": value("vehicle.model", "Golf 1.5 TSI"),
            "year": value("vehicle.year", 2021),
            "price": value("vehicle.price", 18900),
            "vin": value("vehicle.vin", "WVWZZZ1KZ6W000001"),
        },
    }
