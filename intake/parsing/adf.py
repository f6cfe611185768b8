"""ADF/XML (Auto-lead Data Format 1.0) leads, as real senders write them. (Pure.)

Senders break the format in every way listed in DESIGN.md: ``<?adf?>`` before or instead of
``<?xml?>``, upper-case PIs and tags, unquoted attributes, bare ``&``, ``mailto:`` in
``<email>``, phone types outside the enum, ``status="cpo"``, odd dates, several prospects
or documents per mail, ADF inside an HTML comment. We repair what is harmless to repair and
parse with ``defusedxml``: entity expansion (billion laughs) and external entities are
refused, never resolved.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from intake.parsing.enquiry import CustomerInfo, Enquiry, VehicleInfo
from intake.parsing.numbers import parse_count, parse_price

_DOCUMENT = re.compile(r"<adf\b[^>]*>.*?</adf\s*>", re.I | re.S)
_DOCTYPE = re.compile(r"<!DOCTYPE\b(?:[^\[>]|\[.*?\])*>", re.I | re.S)
_PI = re.compile(r"<\?(?:xml|adf)\b[^?]*\?>", re.I)
_BARE_AMP = re.compile(r"&(?!(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);)")
_TAG = re.compile(r"<(/?)([A-Za-z][\w.-]*)([^<>]*?)(/?)>", re.S)
_UNQUOTED = re.compile(r"(\s[\w:-]+)\s*=\s*([^\s\"'>/]+)")


class AdfRefused(Exception):
    """A document we will not parse (entities, external references); the reason says why."""


@dataclass
class AdfResult:
    enquiries: list[Enquiry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    documents: int = 0


def find_documents(text: str) -> list[str]:
    """Every ``<adf>…</adf>`` in a text, an XML attachment or an HTML body (comments too)."""
    lowered = text.lower()
    found = _DOCUMENT.findall(text) if "<adf" in lowered else []
    if not found and "&lt;adf" in lowered:  # ADF pasted into HTML as text
        found = _DOCUMENT.findall(html.unescape(text))
    return found


def declares_entities(text: str) -> bool:
    return "<!ENTITY" in text.upper()


def _repair(document: str) -> str:
    def tag(match: re.Match[str]) -> str:
        slash, name, attrs, selfclose = match.groups()
        attrs = _UNQUOTED.sub(lambda m: f'{m.group(1)}="{m.group(2)}"', attrs)
        attrs = re.sub(r"(\s[\w:-]+)=", lambda m: m.group(1).lower() + "=", attrs)
        return f"<{slash}{name.lower()}{attrs}{selfclose}>"

    document = _PI.sub("", document)
    document = _BARE_AMP.sub("&amp;", document)
    return _TAG.sub(tag, document)


def parse_document(document: str) -> Element:
    if declares_entities(document):
        raise AdfRefused("the document declares XML entities (entity expansion or external entity); refused")
    cleaned = _repair(_DOCTYPE.sub("", document)).strip()
    try:
        return fromstring(cleaned)
    except DefusedXmlException as exc:
        raise AdfRefused(f"unsafe XML refused: {type(exc).__name__}") from None
    except ParseError as exc:
        raise AdfRefused(f"not well-formed even after repair: {exc}") from None


def _text(element: Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _lines(element: Element | None) -> str:
    """Text with its line breaks (comments often carry structured data line by line)."""
    if element is None:
        return ""
    lines = (" ".join(line.split()) for line in "".join(element.itertext()).splitlines())
    return "\n".join(line for line in lines if line)


def _email(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    value = value.strip().strip("<>").strip()
    return value.lower() if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) else ""


def _customer(contact: Element | None) -> CustomerInfo:
    info = CustomerInfo()
    if contact is None:
        return info
    for name in contact.findall("name"):
        part = (name.get("part") or "full").lower()
        value = _text(name)
        if part == "first":
            info.first_name = info.first_name or value
        elif part == "last":
            info.last_name = info.last_name or value
        elif part in ("full", "middle") and part == "full":
            info.name = info.name or value
    for email in contact.findall("email"):
        info.email = info.email or _email(_text(email))
    for phone in contact.findall("phone"):  # any type: voice, fax, cellphone, home, work, mobile…
        value = _text(phone)
        if re.search(r"\d{3}", value) and value not in info.phones:
            info.phones.append(value)
    address = contact.find("address")
    if address is not None:
        info.street = _text(address.find("street"))
        info.postal_code = _text(address.find("postalcode"))
        info.city = _text(address.find("city"))
    return info


def _vehicle(element: Element) -> VehicleInfo:
    price = element.find("price")
    status = (element.get("status") or "").lower()
    vehicle = VehicleInfo(
        interest=(element.get("interest") or "").lower(),
        status=status
        if status in ("new", "used")
        else ("used" if status == "cpo" else ("other" if status else "")),
        year=parse_count(_text(element.find("year"))),
        make=_text(element.find("make")),
        model=_text(element.find("model")),
        trim=_text(element.find("trim")),
        vin=_text(element.find("vin")).upper(),
        stock=_text(element.find("stock")),
        price=parse_price(_text(price)),
        currency=(price.get("currency") or "") if price is not None else "",
        odometer=parse_count(_text(element.find("odometer"))),
    )
    if vehicle.year is not None and not 1900 < vehicle.year < 2100:
        vehicle.year = None
    return vehicle


_INTEREST_TYPE = {"lease": "leasing", "sell": "trade_in", "trade-in": "trade_in", "test-drive": "test_drive"}


def _prospect(prospect: Element) -> Enquiry:
    enquiry = Enquiry(format="adf", resend=(prospect.get("status") or "").lower() == "resend")
    customer = prospect.find("customer")
    enquiry.customer = _customer(customer.find("contact") if customer is not None else None)
    comments = [_lines(customer.find("comments"))] if customer is not None else []
    wanted: list[VehicleInfo] = []
    for element in prospect.findall("vehicle"):
        vehicle = _vehicle(element)
        if vehicle.interest in ("trade-in", "sell"):
            enquiry.trade_ins.append(vehicle)
        else:
            wanted.append(vehicle)
        comments.append(_lines(element.find("comments")))
    if wanted:
        enquiry.vehicle = next((v for v in wanted if not v.is_empty()), wanted[0])
    interest = enquiry.vehicle.interest
    if interest in _INTEREST_TYPE:
        enquiry.type = _INTEREST_TYPE[interest]
    elif enquiry.trade_ins and not wanted:
        enquiry.type = "trade_in"
    elif prospect.find(".//finance") is not None:
        enquiry.type = "financing"
    elif interest == "buy" or not enquiry.vehicle.is_empty():
        enquiry.type = "used_car" if enquiry.vehicle.status == "used" else "new_car"
    enquiry.message = "\n".join(c for c in comments if c)

    provider = prospect.find("provider")
    vendor = prospect.find("vendor")
    id_element = prospect.find("id")
    id_source = (id_element.get("source") or "").strip() if id_element is not None else ""
    id_value = _text(id_element) or ((id_element.get("sequence") or "") if id_element is not None else "")
    provider_name = _text(provider.find("name")) if provider is not None else ""
    vendor_name = (
        _text(vendor.find("vendorname")) or _text(vendor.find("contact/name")) if vendor is not None else ""
    )
    # <vendor> is the dealership the lead is for, not where it came from: not a source.
    enquiry.source = provider_name or id_source or "ADF"
    enquiry.vendor = vendor_name
    if id_value:
        enquiry.external_id = f"{id_value}@{id_source}" if id_source else id_value
    url = _text(provider.find("url")) if provider is not None else ""
    if url:
        enquiry.links.append(url)
    return enquiry


def parse_adf(texts: list[str]) -> AdfResult:
    """All prospects of all ADF documents found in ``texts`` (bodies and attachments)."""
    result = AdfResult()
    seen: set[str] = set()
    for text in texts:
        documents = find_documents(text)
        if documents and declares_entities(text):
            # The DOCTYPE with the entities stands before <adf>: refuse the whole text.
            result.documents += len(documents)
            result.problems.append(
                "the document declares XML entities (entity expansion or external entity); refused"
            )
            continue
        for document in documents:
            if document in seen:
                continue
            seen.add(document)
            result.documents += 1
            try:
                root = parse_document(document)
            except AdfRefused as exc:
                result.problems.append(str(exc))
                continue
            result.enquiries += [_prospect(p) for p in root.iter("prospect")]
    return result
