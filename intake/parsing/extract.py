"""A parsed mail into what it means: a lead (one or more enquiries), a customer's reply to
us, an automatic mail to ignore, or something a person must look at. (Pure.)

Order matters: automatic mail first (never a lead), then replies to our own mail, then the
richest format present (ADF, a call lead, a form or portal mail), then a plain mail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Any, Literal

from intake.parsing.adf import parse_adf
from intake.parsing.charsets import decode_bytes
from intake.parsing.classify import classify, is_no_reply
from intake.parsing.enquiry import CustomerInfo, Enquiry, VehicleInfo
from intake.parsing.forms import fields_from_html, fields_from_text
from intake.parsing.language import detect_language
from intake.parsing.lead_type import type_from_text
from intake.parsing.mime import ParsedMail
from intake.parsing.numbers import parse_count, parse_price
from intake.parsing.our_mail import our_message_ids, reply_token_in
from intake.parsing.sources import dealer_source, is_saved_search_alert, portal_of

Kind = Literal["lead", "reply", "auto_reply", "bounce", "bulk", "unrecognised"]

_XML_TYPES = ("text/xml", "application/xml", "application/x-adf+xml", "application/adf+xml")
# AutoScout24 call tracking (shared/samples/adf/10_…): "Knd.-Nr: 123. Verpasster Anruf um 14:32,
# VW Golf (MIA/NFM)" and its NL, BE, FR and IT variants.
_CALL_SELLER = re.compile(
    r"^\s*(?:Knd\.-Nr|Klantnr\.?|N° client|SellID)\s*:?\s*([\w\[\].]+?)\.?(?=\s|$)", re.I
)
_CALL_WORDS = re.compile(r"anruf|oproep|appel|richiesta telefonica", re.I)
_CALL_MISSED = re.compile(r"verpasst|gemist|manqué|miste|senza risposta", re.I)
_CALL_VEHICLE_MARKERS = (", ", " voor ", " over deze ")
_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.I)
_VEHICLE_URL = re.compile(
    r"mobile\.de|autoscout24\.|/(fahrzeug|fahrzeuge|vehicle|inserat|angebot|details)", re.I
)


@dataclass
class Extraction:
    kind: Kind
    reason: str = ""
    enquiries: list[Enquiry] = field(default_factory=list)
    reply_message_ids: list[str] = field(default_factory=list)
    reply_token: str = ""
    problems: list[str] = field(default_factory=list)


def _recipient_addresses(parsed: ParsedMail) -> list[str]:
    values = [
        v for name in ("to", "cc", "delivered-to", "x-original-to") for v in parsed.headers.get(name, [])
    ]
    return [addr.lower() for _, addr in getaddresses(values) if addr]


def _reply_markers(parsed: ParsedMail, envelope_to: Sequence[str]) -> tuple[list[str], str]:
    ids = our_message_ids(" ".join([parsed.in_reply_to, *parsed.references]))
    token = ""
    for address in [*envelope_to, *_recipient_addresses(parsed)]:
        token = reply_token_in(address)
        if token:
            break
    return ids, token


def _links(text: str) -> list[str]:
    found: list[str] = []
    for url in _URL.findall(text):
        url = url.rstrip(".,;:")
        if _VEHICLE_URL.search(url) and url not in found:
            found.append(url)
    return found[:10]


def _split_vehicle(label: str) -> tuple[str, str]:
    words = label.split()
    return (words[0], " ".join(words[1:])) if len(words) > 1 else (label, "")


def _from_fields(fields: dict[str, str]) -> Enquiry:
    enquiry = Enquiry(format="form")
    customer = CustomerInfo(
        name=fields.get("name", ""),
        first_name=fields.get("first_name", ""),
        last_name=fields.get("last_name", ""),
        salutation=fields.get("salutation", ""),
        email=(re.search(r"[^\s<>:;,]+@[^\s<>:;,]+\.[a-z]{2,}", fields.get("email", ""), re.I) or [""])[
            0
        ].lower(),
        street=fields.get("street", ""),
        postal_code=fields.get("postal_code", ""),
        city=fields.get("city", ""),
    )
    for key in ("mobile", "phone"):
        if len(re.sub(r"\D", "", fields.get(key, ""))) >= 6:
            customer.phones.append(fields[key])
    enquiry.customer = customer
    vehicle = VehicleInfo(
        make=fields.get("make", ""),
        model=fields.get("model", ""),
        vin=fields.get("vin", "").upper(),
        stock=fields.get("stock", ""),
        price=parse_price(fields.get("price", "")),
        odometer=parse_count(fields.get("mileage", ""), max_digits=9),
        first_registration=fields.get("first_registration", ""),
        year=parse_count(fields.get("year", ""), max_digits=9),
        url=fields.get("link", ""),
    )
    label = fields.get("vehicle", "")
    if label and not (vehicle.make or vehicle.model):
        vehicle.make, vehicle.model = _split_vehicle(label)
        vehicle.label = label
    enquiry.vehicle = vehicle
    enquiry.message = fields.get("message", "")
    return enquiry


def _form_fields(parsed: ParsedMail) -> dict[str, str]:
    fields = fields_from_html(parsed.html) if parsed.html else {}
    for key, value in fields_from_text(parsed.body_text).items():
        fields.setdefault(key, value)
    return fields


def _is_form(fields: dict[str, str]) -> bool:
    contact = {"email", "phone", "mobile", "name", "first_name", "last_name"} & fields.keys()
    return bool(contact) and len(fields) >= 2


def parse_call_subject(subject: str) -> dict[str, str] | None:
    """seller, time, vehicle, listing ids and missed (\"1\"/\"\") of a call-tracking subject."""
    seller = _CALL_SELLER.match(subject)
    if not seller or not _CALL_WORDS.search(subject) or "(" not in subject:
        return None
    head, _, tail = subject.rpartition("(")
    ids = tail.partition(")")[0]
    head = re.sub(r",?\s*uit\s*$", "", head.strip(), flags=re.I)  # BE-NL: "…Audi A4, uit (MIA) tier"
    cut = max(head.rfind(marker) + len(marker) if marker in head else -1 for marker in _CALL_VEHICLE_MARKERS)
    vehicle = head[cut:].strip() if cut > 0 else ""
    time = re.search(r"\b(\d{1,2}[:.]\d{2})\b", subject)
    return {
        "seller": seller.group(1),
        "time": time.group(1) if time else "",
        "vehicle": vehicle,
        "ids": ids,
        "missed": "1" if _CALL_MISSED.search(subject) else "",
    }


def _call_lead(parsed: ParsedMail) -> Enquiry | None:
    call = parse_call_subject(parsed.subject)
    if call is None:
        return None
    enquiry = Enquiry(format="call", type="callback")
    make, model = _split_vehicle(call["vehicle"])
    enquiry.vehicle = VehicleInfo(make=make, model=model, label=call["vehicle"])
    ids = [i.strip() for i in call["ids"].split("/") if i.strip()]
    if ids:
        enquiry.external_id = f"call:{call['seller']}:{ids[0]}:{call['time']}"
    enquiry.message = parsed.subject + ("\nMissed call: call the customer back." if call["missed"] else "")
    for phone in re.findall(r"(?:\+|00)?\d[\d /().-]{6,}\d", parsed.body_text):
        if len(re.sub(r"\D", "", phone)) >= 7:
            enquiry.customer.phones.append(phone.strip())
            break
    return enquiry


def _xml_texts(parsed: ParsedMail) -> list[str]:
    texts = [parsed.text, parsed.html]
    for attachment in parsed.attachments:
        if attachment.content_type in _XML_TYPES or attachment.filename.lower().endswith(".xml"):
            texts.append(decode_bytes(attachment.payload))
    return [t for t in texts if t]


def sender_as_customer(parsed: ParsedMail, *, system_sender: bool) -> CustomerInfo:
    """The person behind the mail: From, unless From is a system (a portal, a no-reply robot,
    the dealer's own form mailer), then Reply-To (which must itself be a person)."""
    candidates = [(parsed.from_name, parsed.from_email), (parsed.reply_to_name, parsed.reply_to)]
    if system_sender or is_no_reply(parsed.from_email) or portal_of(parsed.from_email) is not None:
        candidates = candidates[1:]
    for name, address in candidates:
        if address and "@" in address and not is_no_reply(address) and portal_of(address) is None:
            return CustomerInfo(name=name, email=address)
    return CustomerInfo()


def extract(
    parsed: ParsedMail,
    *,
    dealer_sources: Sequence[dict[str, Any]] = (),
    envelope_to: Sequence[str] = (),
) -> Extraction:
    classification = classify(parsed)
    if classification.kind != "lead":
        return Extraction(classification.kind, classification.reason)
    if is_saved_search_alert(parsed.from_email, parsed.subject):
        return Extraction("bulk", f"saved-search alert from {parsed.from_email}")

    ids, token = _reply_markers(parsed, envelope_to)
    result = Extraction("lead", reply_message_ids=ids, reply_token=token)

    portal = portal_of(parsed.from_email)
    source = dealer_source(dealer_sources, sender=parsed.from_email, subject=parsed.subject) or (
        portal.name if portal else ""
    )
    system_sender = portal is not None or any(
        dealer_source([{**rule, "subject": []}], sender=parsed.from_email, subject="")
        for rule in dealer_sources
        if rule.get("from")
    )
    sender_customer = sender_as_customer(parsed, system_sender=system_sender)

    adf = parse_adf(_xml_texts(parsed))
    result.problems += adf.problems
    enquiries: list[Enquiry]
    if adf.enquiries:
        enquiries = adf.enquiries
        for enquiry in enquiries:
            if source and enquiry.source == "ADF":
                enquiry.source = source
            if not (enquiry.customer.email or enquiry.customer.phones):
                # An ADF mail comes from a lead system: only a personal Reply-To can stand in.
                enquiry.customer.merge(sender_as_customer(parsed, system_sender=True))
    elif adf.documents and adf.problems:
        return Extraction("unrecognised", "ADF refused: " + "; ".join(adf.problems), problems=adf.problems)
    elif (call := _call_lead(parsed)) is not None:
        call.source = source or "Phone"
        enquiries = [call]
    else:
        fields = _form_fields(parsed)
        if _is_form(fields):
            enquiry = _from_fields(fields)
            enquiry.format = "portal" if portal else "form"
            enquiry.customer.merge(sender_customer)
        else:
            enquiry = Enquiry(format="mail", customer=sender_customer)
        enquiry.source = source or ("Web form" if enquiry.format == "form" else "E-Mail")
        if not enquiry.message:
            enquiry.message = parsed.body_text
        enquiries = [enquiry]

    for enquiry in enquiries:
        text = "\n".join([enquiry.message, parsed.body_text if enquiry.format != "adf" else ""])
        if enquiry.type == "general":
            enquiry.type = type_from_text(parsed.subject, text) or (
                "used_car" if enquiry.vehicle.status == "used" else "general"
            )
        enquiry.language = detect_language(f"{parsed.subject}\n{text}")
        for link in _links(f"{parsed.body_text}\n{parsed.html}"):
            if link not in enquiry.links:
                enquiry.links.append(link)
        if not enquiry.vehicle.url and enquiry.links:
            enquiry.vehicle.url = enquiry.links[0]

    usable = [e for e in enquiries if e.customer.email or e.customer.phones]
    if not usable:
        if ids or token:
            return result  # a reply to us without contact details: the reply decides
        result.kind, result.reason = "unrecognised", "no customer contact details (no email address or phone)"
        result.enquiries = enquiries
        return result
    result.enquiries = usable
    return result
