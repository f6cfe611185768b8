"""A parsed mail into what it means: a lead (one or more enquiries), a customer's reply to
us, an automatic mail to ignore, or something a person must look at. (Pure.)

Order matters: automatic mail first (never a lead), then replies to our own mail, then the
richest format present (ADF, a call lead, a form or portal mail), then a plain mail.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from intake.parsing.addresses import is_valid_address
from intake.parsing.adf import parse_adf
from intake.parsing.authenticity import Trust, Verdict, sender_verdict
from intake.parsing.bounces import BounceReport, bounce_report
from intake.parsing.charsets import decode_bytes
from intake.parsing.classify import classify, is_no_reply
from intake.parsing.customer_text import own_text, signature_name
from intake.parsing.enquiry import CustomerInfo, Enquiry, VehicleInfo
from intake.parsing.forms import fields_from_html, fields_from_text
from intake.parsing.language import detect_language
from intake.parsing.lead_type import type_from_text
from intake.parsing.mime import ParsedMail
from intake.parsing.numbers import parse_count, parse_price
from intake.parsing.phones import phones_in_text
from intake.parsing.sources import dealer_source, is_saved_search_alert, portal_of
from intake.parsing.thread_markers import (
    OUR_MESSAGE_ID,
    REPLY_TOKEN,
    is_forward_subject,
    lead_id_in_subject,
    our_message_ids,
    reply_token_in,
)
from intake.parsing.vehicles import vehicle_in_text

Kind = Literal["lead", "reply", "auto_reply", "bounce", "bulk", "unrecognised"]

__all__ = ["OUR_MESSAGE_ID", "REPLY_TOKEN", "Extraction", "extract"]
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
    # Which robot it was (see intake.parsing.classify), and what a report says about the
    # mail it reports on (bounces, delivery reports, complaints).
    family: str = ""
    bounce: BounceReport | None = None
    # "[Lead #N]" in the subject (our forwards and notifications carry it).
    subject_lead_id: int | None = None
    # Who forwarded an enquiry attached as message/rfc822 (the enquiry is the attached mail).
    forwarded_by: str = ""


# Every header a mail server or client may put a recipient into; Outlook and Exchange keep
# our token in To but may drop In-Reply-To, a forwarder keeps it in X-Original-To.
_RECIPIENT_HEADERS = (
    "to",
    "cc",
    "bcc",
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "x-envelope-to",
    "x-delivered-to",
    "resent-to",
    "resent-cc",
    "apparently-to",
    "x-rcpt-to",
    "original-recipient",
)
_BOUNCE_FAMILIES = ("dsn", "bounce", "arf", "vendor_notification")


def _reply_markers(parsed: ParsedMail, envelope_to: Sequence[str]) -> tuple[list[str], str]:
    ids = our_message_ids([parsed.in_reply_to, *parsed.references])
    # Raw header values: a token is an address part, never inside an encoded display name.
    values = [v for name in _RECIPIENT_HEADERS for v in parsed.raw_headers.get(name, [])]
    return ids, reply_token_in([*envelope_to, *values])


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


def _form_email(value: str) -> str:
    match = re.search(r"[^\s<>:;,]+@[^\s<>:;,]+\.[a-z]{2,}", value, re.I)
    address = match.group(0).lower() if match else ""
    return address if is_valid_address(address) else ""


def _from_fields(fields: dict[str, str]) -> Enquiry:
    enquiry = Enquiry(format="form")
    customer = CustomerInfo(
        name=fields.get("name", ""),
        first_name=fields.get("first_name", ""),
        last_name=fields.get("last_name", ""),
        salutation=fields.get("salutation", ""),
        email=_form_email(fields.get("email", "")),
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
        if is_valid_address(address) and not is_no_reply(address) and portal_of(address) is None:
            return CustomerInfo(name=name, email=address)
    return CustomerInfo()


def extract(
    parsed: ParsedMail,
    *,
    dealer_sources: Sequence[dict[str, Any]] = (),
    envelope_to: Sequence[str] = (),
    region: str = "",
    own_addresses: Collection[str] = (),
    own_numbers: Collection[str] = (),
    trust: Trust | None = None,
) -> Extraction:
    """What ``parsed`` means for the dealer whose facts are passed: ``region`` (the dealer's
    country, for phone numbers written without one), ``own_addresses`` (its mailboxes and
    sender address: mail from them is our own coming back), ``own_numbers`` (E.164 numbers
    of the dealer, never the customer's), ``trust`` (what the receiving side verified)."""
    classification = classify(parsed, own_addresses=own_addresses)
    if classification.kind != "lead":
        report = None
        if classification.family in _BOUNCE_FAMILIES:
            reported = classification.report_of or parsed
            report = bounce_report(reported, classification.family, classification.vendor)
        return Extraction(
            classification.kind, classification.reason, family=classification.family, bounce=report
        )
    if is_saved_search_alert(parsed.from_email, parsed.subject):
        return Extraction("bulk", f"saved-search alert from {parsed.from_email}", family="bulk")

    ids, token = _reply_markers(parsed, envelope_to)
    options = {
        "dealer_sources": dealer_sources,
        "region": region,
        "own_addresses": own_addresses,
        "own_numbers": own_numbers,
        "trust": trust,
    }
    forwarded = _forwarded_enquiry(parsed, options)
    if forwarded is not None:
        forwarded.reply_message_ids, forwarded.reply_token = ids, token
        forwarded.subject_lead_id = lead_id_in_subject(parsed.subject)
        return forwarded
    result = _extract_lead(parsed, ids, token, **options)  # type: ignore[arg-type]
    result.subject_lead_id = lead_id_in_subject(parsed.subject)
    return result


def _forwarded_enquiry(parsed: ParsedMail, options: dict[str, Any]) -> Extraction | None:
    """A customer's enquiry forwarded as an attached message (message/rfc822) is read as that
    enquiry: the customer is its sender, the forwarder's note goes in front of its text."""
    if not parsed.attached or not (is_forward_subject(parsed.subject) or len(own_text(parsed.text)) < 400):
        return None
    for mail in parsed.attached:
        if not mail.from_valid or (mail.from_email == parsed.from_email and not mail.body_text):
            continue
        inner = extract(mail, **options)
        if inner.kind != "lead" or not inner.enquiries:
            continue
        note = own_text(parsed.text)
        for enquiry in inner.enquiries:
            if note and note not in enquiry.message:
                enquiry.message = f"{note}\n\n---\n{enquiry.message}".strip()
        inner.forwarded_by = parsed.from_email
        return inner
    return None


def _claim(parsed: ParsedMail, trust: Trust | None) -> tuple[Any, Verdict | None]:
    """The portal the sender claims to be, and whether that claim holds."""
    portal = portal_of(parsed.from_email)
    if portal is None:
        return None, None
    verdict = sender_verdict(parsed, portal.domains, trust)
    return (None if verdict.state == "unverified" else portal), verdict


def _enrich_from_text(
    enquiry: Enquiry, parsed: ParsedMail, region: str, own_numbers: Collection[str]
) -> None:
    """Phones, vehicle and name from the customer's own words, where the format gave none."""
    text = own_text(parsed.body_text) if enquiry.format == "mail" else enquiry.message
    if not enquiry.customer.phones:
        for phone in phones_in_text(text, region, exclude=own_numbers):
            enquiry.customer.phones.append(phone.raw)
    if not (enquiry.vehicle.make or enquiry.vehicle.model or enquiry.vehicle.label):
        named = vehicle_in_text(f"{parsed.subject}\n{text}")
        if named is not None:
            enquiry.vehicle.make, enquiry.vehicle.model = named.make, named.model
    if not enquiry.customer.display_name and enquiry.format == "mail":
        enquiry.customer.name = signature_name(text)


def _extract_lead(
    parsed: ParsedMail,
    ids: list[str],
    token: str,
    *,
    dealer_sources: Sequence[dict[str, Any]],
    region: str,
    own_addresses: Collection[str],
    own_numbers: Collection[str],
    trust: Trust | None,
) -> Extraction:
    result = Extraction("lead", reply_message_ids=ids, reply_token=token)

    portal, verdict = _claim(parsed, trust)
    source = dealer_source(dealer_sources, sender=parsed.from_email, subject=parsed.subject) or (
        portal.name if portal else ""
    )
    claimed_portal = verdict is not None
    system_sender = claimed_portal or any(
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
    elif not (verdict and verdict.state == "unverified") and (call := _call_lead(parsed)) is not None:
        call.source = source or "Phone"
        enquiries = [call]
    elif verdict is not None and verdict.state == "unverified":
        # A spoofed portal mail: never the portal's rule, nor the contact details its body
        # claims; a plain mail from whoever its own headers name.
        enquiry = Enquiry(format="mail", customer=sender_customer, source="E-Mail", message=parsed.body_text)
        enquiries = [enquiry]
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
        if enquiry.customer.email and not is_valid_address(enquiry.customer.email):
            # Whatever format carried it (ADF, a form field), nobody can be written to there.
            result.problems.append(f"customer address {enquiry.customer.email!r} is no mail address: dropped")
            enquiry.customer.email = ""
        if verdict is not None:
            enquiry.sender_check, enquiry.sender_check_detail = verdict.state, verdict.detail
        if enquiry.format in ("mail", "form", "portal"):
            _enrich_from_text(enquiry, parsed, region, own_numbers)
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
