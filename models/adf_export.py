"""A lead as ADF/XML (Auto-lead Data Format 1.0), for dealer systems that take ADF: the
webhooks' ``format = "adf"`` and ``lms leads show ID --adf``. (Pure.)

Written strictly to the ADF 1.0 DTD's element order (requestdate, vehicle+, customer, vendor,
provider), whatever the senders we read get wrong (``intake/parsing/adf.py`` reads it back).
The lead type maps to the vehicle's ``interest``: test drive → ``test-drive``, leasing →
``lease``, everything else → ``buy`` (financing adds ``<finance>``); trade-ins are vehicles of
interest ``trade-in``. Text goes through ElementTree, which escapes it: a customer's ``<`` or
``&`` cannot break the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element, SubElement, indent, tostring

INTEREST = {"test_drive": "test-drive", "leasing": "lease"}
VEHICLE_STATUS = ("new", "used")


def _text(parent: Element, tag: str, value: object, **attrs: str) -> Element | None:
    if value is None or value == "":
        return None
    child = SubElement(parent, tag, attrs)
    # XML 1.0 refuses most control characters even escaped: drop them.
    child.text = "".join(ch for ch in str(value) if ch in "\t\n\r" or ord(ch) >= 0x20)
    return child


def _vehicle(parent: Element, vehicle: Mapping[str, Any], interest: str, lead_type: str) -> None:
    attrs = {"interest": interest}
    status = str(vehicle.get("status") or "")
    if status in VEHICLE_STATUS:
        attrs["status"] = status
    element = SubElement(parent, "vehicle", attrs)
    for tag in ("year", "make", "model", "vin", "stock", "trim"):
        _text(element, tag, vehicle.get(tag))
    _text(
        element, "odometer", vehicle.get("odometer") or vehicle.get("mileage"), status="original", units="km"
    )
    if vehicle.get("price") is not None:
        _text(
            element, "price", vehicle["price"], type="asking", currency=str(vehicle.get("currency") or "EUR")
        )
    if lead_type == "financing" and interest != "trade-in":
        finance = SubElement(element, "finance")
        _text(finance, "method", "finance")


def lead_adf(lead: Mapping[str, Any], *, dealer_name: str) -> str:
    """The lead (the INTERFACE.md JSON shape, :func:`models.lead_views.lead_dict`) as ADF/XML."""
    adf = Element("adf")
    prospect = SubElement(adf, "prospect", {"status": "new"})
    _text(prospect, "id", f"{lead['dealer']}-{lead['id']}", sequence="1", source="lms")
    _text(prospect, "requestdate", lead.get("created_at"))
    lead_type = str(lead.get("type") or "general")
    vehicle = lead.get("vehicle") or {}
    _vehicle(prospect, vehicle, INTEREST.get(lead_type, "buy"), lead_type)
    for trade_in in lead.get("trade_ins") or []:
        _vehicle(prospect, trade_in, "trade-in", lead_type)
    customer = SubElement(prospect, "customer")
    contact = SubElement(customer, "contact")
    person = lead.get("contact") or {}
    _text(contact, "name", person.get("name") or person.get("email") or "unknown", part="full")
    _text(contact, "email", person.get("email"))
    _text(contact, "phone", person.get("phone"), type="voice")
    comments = "\n".join(str(part) for part in (lead.get("subject"), lead.get("message")) if part)
    _text(customer, "comments", comments)
    vendor = SubElement(prospect, "vendor")
    _text(vendor, "vendorname", dealer_name)
    if lead.get("editor"):
        seller = SubElement(vendor, "contact", {"primarycontact": "1"})
        _text(seller, "name", lead["editor"], part="full")
    provider = SubElement(prospect, "provider")
    _text(provider, "name", lead.get("source") or "lms", part="full")
    _text(provider, "service", lead_type)
    indent(adf, space="  ")
    body = tostring(adf, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<?adf version="1.0"?>\n{body}\n'
