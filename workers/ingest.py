"""A stored inbound message becomes what it means, safe to repeat:

- automatic mail (bounce, auto-reply, bulk, saved-search alert): ``ignored`` with the reason;
- a customer's reply to our mail: an activity on its lead;
- each enquiry in it: a contact (matched by email, then phone) and either an activity on the
  contact's open lead or a new lead, routed, with its due date, answered by the
  autoresponder, forwarded to the dealer and announced to its editor;
- a mail nobody can make sense of: ``unrecognised``, waiting for a person.

Prepare, then commit briefly. The expensive work runs outside any write transaction (on
SQLite a write transaction locks the whole database): parsing and recognition, the routing
decision on a read snapshot, and rendering the mails. The writes are two short transactions
that re-check the row's state first:

1. contacts, leads (with the routing decision, stored only if the rotation did not move
   meanwhile: :class:`workers.assign.RoutingConflict` means decide again), due dates,
   activities; the message becomes ``routed`` when a new lead's mails are still to be written;
2. after rendering: the outbox rows, and the message becomes ``processed``.

A worker that dies between them leaves a ``routed`` message that the sweeper hands back;
ingest then only writes the mails still missing (every outbox row has a unique purpose). A
lost race drops the prepared work; unique keys keep anything from being written twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from intake.parsing.classify import is_no_reply
from intake.parsing.enquiry import Enquiry
from intake.parsing.extract import Extraction, extract
from intake.parsing.mime import ParsedMail, parse_mail
from intake.parsing.our_mail import OUR_HEADER, reply_address
from intake.parsing.sources import PORTALS
from intake.store import mailbox_key
from models import metrics
from models.autoresponse_gate import AnswerFacts, autoresponse_gate
from models.contacts import normalise_email
from models.db import Database, dialect_insert
from models.log_context import each_logged, log_ids
from models.policy import DealerPolicy, load_policy
from models.routing import Decision, LeadFacts
from models.tables import (
    INBOUND_FINAL_STATES,
    Contact,
    InboundMessage,
    Lead,
    LeadActivity,
    OutboundMessage,
    Source,
    User,
)
from workers import lead_events, outbox, probe
from workers.assign import (
    RoutingConflict,
    RoutingSnapshot,
    apply_decision,
    decide_for,
    lock_rotations,
    previous_editor,
    snapshot,
)
from workers.bounces import record_bounce
from workers.contacts import find_contact, identities, lock_identity_keys, match_contact
from workers.escalations import set_first_due
from workers.parse_facts import (
    NOTHING_CONFIGURED,
    RECEIVING_VIAS,
    ReceivingSide,
    extract_options,
    own_addresses,
)
from workers.render.context import lead_context
from workers.reply_lookup import find_replied_lead

log = logging.getLogger(__name__)

PORTAL_NAMES = frozenset({p.name for p in PORTALS} | {"ADF", "E-Mail", "Web form"})

RESEND_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class Timing:
    # How long a new outbox row waits for its enqueued send before the sweeper steps in.
    grace: timedelta = timedelta(seconds=60)
    # An autoresponse not delivered by then is marked expired rather than sent late.
    autoresponse_max_age: timedelta = timedelta(hours=4)


@dataclass
class IngestResult:
    state: str
    lead_ids: list[int] = field(default_factory=list)  # every lead the message touched
    outbound_ids: list[int] = field(default_factory=list)
    new_lead_ids: list[int] = field(default_factory=list)
    # For the metrics, set only by the call that made it happen: why the message became final
    # here (lead | reply | unrecognised | the ignored kind), and the new leads' (source, type,
    # format).
    reason: str | None = None
    created: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Understood:
    """What recognition made of a mail (pure work, done before any transaction)."""

    parsed: ParsedMail
    extraction: Extraction


@dataclass(frozen=True)
class RoutingPlan:
    """Who gets a new lead, decided on a snapshot; valid while the facts it used still hold."""

    decision: Decision
    previous_editor: str | None  # the owner rule's fact about the contact
    user_ids: dict[str, int]


@dataclass
class LeadMails:
    specs: list[outbox.MailSpec] = field(default_factory=list)
    # Autoresponses the gate refused: lead id → why.
    skipped: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Envelope:
    """The stored message's facts that ingest needs, copied out of its transaction."""

    id: int
    dealer_id: str
    raw: bytes
    envelope_from: str
    envelope_to: tuple[str, ...]
    via: str
    received_at: datetime
    message_id: str | None

    @classmethod
    def of(cls, row: InboundMessage) -> Envelope:
        return cls(
            row.id,
            row.dealer_id,
            row.raw,
            row.envelope_from,
            tuple(row.envelope_to),
            row.via,
            row.received_at,
            row.message_id,
        )

    @property
    def mailbox(self) -> str:
        return mailbox_key(self.envelope_to[0]) if self.envelope_to else ""


def understand(
    envelope: Envelope, policy: DealerPolicy, receiving: ReceivingSide = NOTHING_CONFIGURED
) -> Understood:
    parsed = parse_mail(envelope.raw)
    options = extract_options(parsed, envelope.raw, envelope.via, envelope.envelope_to, policy, receiving)
    return Understood(parsed, extract(parsed, **options))


# -- the pipeline's entry ----------------------------------------------------------------------
@dataclass
class _Item:
    """One message of a batch on its way through ingest."""

    id: int
    envelope: Envelope | None = None
    policy: DealerPolicy | None = None
    understood: Understood | None = None
    routed: list[int] = field(default_factory=list)  # leads written before (a resumed ingest)
    plans: list[RoutingPlan | None] = field(default_factory=list)
    result: IngestResult | None = None
    error: Exception | None = None
    mails: LeadMails | None = None
    prepared: list[outbox.PreparedMail] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.result is None and self.error is None

    def log_ids(self) -> dict[str, object]:
        """The ids its log lines carry (issue 14)."""
        dealer = self.envelope.dealer_id if self.envelope else None
        leads = (self.result.lead_ids if self.result else None) or self.routed
        return log_ids(inbound_id=self.id, dealer=dealer, lead_id=leads[0] if len(leads) == 1 else None)


def ingest_batch(
    db: Database,
    inbound_ids: Sequence[int],
    *,
    now: datetime,
    timing: Timing = Timing(),
    receiving: ReceivingSide = NOTHING_CONFIGURED,
) -> dict[int, IngestResult | Exception]:
    """Stored messages through ingest together: one read, one write transaction for their
    leads, rendering outside, one write transaction for their mails. Each message is isolated
    by a savepoint: one that fails (its exception is its result) takes no other with it."""
    items = [_Item(inbound_id) for inbound_id in dict.fromkeys(inbound_ids)]
    _load(db, items)
    for item in each_logged(items, _Item.log_ids):
        if item.pending:
            try:
                assert item.envelope is not None and item.policy is not None
                item.understood = understand(item.envelope, item.policy, receiving)
            except Exception as exc:  # the parser never raises; a bug must not stop the others
                item.error = exc
    fresh = [item for item in items if item.pending and not item.routed]
    if fresh:
        with db.read() as session:
            snaps: dict[str, RoutingSnapshot] = {}
            for item in fresh:
                assert item.policy is not None and item.understood is not None and item.envelope is not None
                item.plans = plan_routing(
                    session, item.policy, item.understood, item.envelope, now=now, snaps=snaps
                )
        _write_leads(db, fresh, now=now, timing=timing)
        _count(fresh)
    mailing = [i for i in items if i.routed or (i.result is not None and i.result.state == "routed")]
    if mailing:
        _write_mails(db, mailing, now=now, timing=timing)
        _count(mailing)
    for item in items:
        _log_outcome(item)
    return {item.id: item.error or item.result or IngestResult("missing") for item in items}


def _source_labels(policy: DealerPolicy) -> frozenset[str]:
    """Sources a metric label may name: the dealer's own, the portals and our generic ones. Any
    other (an ADF provider's name is whatever the sender wrote) is counted as "other"."""
    return frozenset(s.name for s in policy.sources) | PORTAL_NAMES


def _count(items: list[_Item]) -> None:
    """After a commit: the messages it made final and the leads it created."""
    for item in items:
        result, envelope = item.result, item.envelope
        if item.error is not None or result is None or envelope is None:
            continue
        if result.reason is not None and result.state != "routed":
            metrics.inbound_final(result.state, result.reason)
        # (A probe lead is never in ``created``: the probe measures the path, it is no lead.)
        for source, lead_type, _form in result.created:
            label = source if item.policy is not None and source in _source_labels(item.policy) else "other"
            metrics.lead_created(envelope.dealer_id, label, lead_type, envelope.received_at)
        result.reason, result.created = None, []  # counted once


def _log_outcome(item: _Item) -> None:
    """One line per message with its ids: what ingest made of it (issue 14)."""
    if item.error is not None:
        return  # logged where it failed, and recorded on the row by the caller
    result = item.result or IngestResult("missing")
    leads = f", lead(s) {', '.join(map(str, result.lead_ids))}" if result.lead_ids else ""
    mails = f", outbound {', '.join(map(str, result.outbound_ids))}" if result.outbound_ids else ""
    log.info("inbound %s: %s%s%s", item.id, result.state, leads, mails, extra=item.log_ids())


def ingest_message(
    db: Database,
    inbound_id: int,
    *,
    now: datetime,
    timing: Timing = Timing(),
    receiving: ReceivingSide = NOTHING_CONFIGURED,
) -> IngestResult:
    """One stored message through ingest (a batch of one); its failure raises."""
    result = ingest_batch(db, [inbound_id], now=now, timing=timing, receiving=receiving)[inbound_id]
    if isinstance(result, Exception):
        raise result
    return result


def _load(db: Database, items: list[_Item]) -> None:
    with db.read() as session:
        for item in items:
            row = session.get(InboundMessage, item.id)
            if row is None:
                item.result = IngestResult("missing")
            elif row.state in INBOUND_FINAL_STATES:
                item.result = IngestResult(row.state)
            else:
                try:
                    item.policy = load_policy(session, row.dealer_id)
                except Exception as exc:  # a stored configuration no schema accepts
                    item.error = exc
                    continue
                item.envelope = Envelope.of(row)
                # Leads already there: a worker died after writing them; only mails are missing.
                item.routed = _lead_ids_of(session, item.id)


def _write_leads(db: Database, items: list[_Item], *, now: datetime, timing: Timing) -> None:
    with db.session() as session:
        # Every customer of the batch first, in one sorted order; rotations only after that:
        # the order every ingest takes its locks in, so two never wait for each other.
        lock_customers(session, [(item.policy, item.understood) for item in items])  # type: ignore[misc]
        relocked: set[str] = set()
        for index, item in enumerate(each_logged(items, _Item.log_ids)):
            assert item.policy is not None and item.understood is not None and item.envelope is not None
            for attempt in range(2):
                try:
                    with session.begin_nested():
                        item.result = write_inbound(
                            session,
                            item.envelope,
                            item.policy,
                            item.understood,
                            item.plans,
                            now=now,
                            timing=timing,
                        )
                    break
                except RoutingConflict as exc:
                    if attempt:
                        item.error = exc
                        break
                    # Another worker routed for this dealer meanwhile: decide again holding the
                    # dealer's rotation rows, for this message and the later ones of the dealer.
                    log.debug("inbound %s: %s; deciding again under the rotation lock", item.id, exc)
                    if item.policy.id not in relocked:
                        lock_rotations(session, item.policy)
                        relocked.add(item.policy.id)
                    _replan(session, items[index:], item.policy.id, now=now)
                except Exception as exc:
                    log.exception("ingest of inbound message %s failed", item.id)
                    item.error = exc
                    break


def _replan(session: Session, items: list[_Item], dealer_id: str, *, now: datetime) -> None:
    snaps: dict[str, RoutingSnapshot] = {}
    for item in items:
        if item.pending and item.policy is not None and item.policy.id == dealer_id:
            assert item.understood is not None and item.envelope is not None
            item.plans = plan_routing(
                session, item.policy, item.understood, item.envelope, now=now, snaps=snaps
            )


def _write_mails(db: Database, items: list[_Item], *, now: datetime, timing: Timing) -> None:
    with db.read() as session:
        for item in items:
            assert item.policy is not None and item.envelope is not None and item.understood is not None
            lead_ids = item.routed or (item.result.new_lead_ids if item.result else [])
            item.mails = lead_mails(
                session, item.policy, lead_ids, item.envelope, item.understood, now, timing
            )
    for item in each_logged(items, _Item.log_ids):  # rendering: no transaction
        assert item.policy is not None and item.mails is not None
        item.prepared = [outbox.prepare(item.policy, spec, now=now) for spec in item.mails.specs]
    with db.session() as session:
        for item in each_logged(items, _Item.log_ids):
            assert item.policy is not None and item.mails is not None and item.understood is not None
            touched = item.result.lead_ids if item.result else item.routed
            new = item.routed or (item.result.new_lead_ids if item.result else [])
            try:
                with session.begin_nested():
                    row = locked_inbound(session, item.id)
                    if row is None or row.state in INBOUND_FINAL_STATES:
                        item.result = IngestResult(row.state if row else "missing", touched)
                        continue
                    ids = queue_mails(
                        session, item.policy, item.prepared, item.mails.skipped, now=now, timing=timing
                    )
                    finish_inbound(row, "processed", item.understood.extraction.reason or None, now)
                item.result = IngestResult("processed", touched, ids, new, reason="lead")
            except Exception as exc:
                log.exception("writing the mails of inbound message %s failed", item.id)
                item.error = exc


def _lead_ids_of(session: Session, inbound_id: int) -> list[int]:
    return list(session.scalars(select(Lead.id).where(Lead.inbound_id == inbound_id).order_by(Lead.ordinal)))


def lock_customers(session: Session, items: list[tuple[DealerPolicy, Understood]]) -> None:
    """Lock the identities of every customer the messages name (see :mod:`workers.contacts`)."""
    keys = []
    for policy, understood in items:
        for enquiry in understood.extraction.enquiries:
            email, phones = identities(enquiry.customer, policy.country)
            keys += [(policy.id, key) for key in ([email, *phones] if email else phones)]
    lock_identity_keys(session, keys)


# -- in one session (a person's action: reparse, a lead made by hand) ----------------------------
def process_inbound(
    session: Session,
    row: InboundMessage,
    *,
    now: datetime,
    timing: Timing,
    force_source: str | None = None,
    understood: Understood | None = None,
    receiving: ReceivingSide = NOTHING_CONFIGURED,
) -> IngestResult:
    """The whole of ingest in the caller's transaction."""
    policy = load_policy(session, row.dealer_id)
    envelope = Envelope.of(row)
    if understood is None:
        understood = understand(envelope, policy, receiving)
    if force_source:
        for enquiry in understood.extraction.enquiries:
            enquiry.source = force_source
    plans = plan_routing(session, policy, understood, envelope, now=now)
    written = write_inbound(session, envelope, policy, understood, plans, now=now, timing=timing, again=True)
    if written.state != "routed":
        return written
    mails = lead_mails(session, policy, written.new_lead_ids, envelope, understood, now, timing)
    prepared = [outbox.prepare(policy, spec, now=now) for spec in mails.specs]
    written.outbound_ids = queue_mails(session, policy, prepared, mails.skipped, now=now, timing=timing)
    finish_inbound(row, "processed", understood.extraction.reason or None, now)
    written.state = "processed"
    return written


def locked_inbound(session: Session, inbound_id: int) -> InboundMessage | None:
    """The message's row for a state change: locked, without its raw bytes (read already)."""
    return session.get(InboundMessage, inbound_id, with_for_update=True, options=[defer(InboundMessage.raw)])


def finish_inbound(row: InboundMessage, state: str, reason: str | None, now: datetime) -> None:
    row.state = state
    row.reason = reason
    row.error = None
    row.next_attempt_at = None
    row.updated_at = now


# -- the routing decision, on a read snapshot ---------------------------------------------------
def _open_lead(session: Session, dealer_id: str, contact_id: int) -> Lead | None:
    return session.scalar(
        select(Lead)
        .where(Lead.dealer_id == dealer_id, Lead.contact_id == contact_id, Lead.status == "open")
        .order_by(Lead.last_activity_at.desc())
        .limit(1)
    )


def plan_routing(
    session: Session,
    policy: DealerPolicy,
    understood: Understood,
    envelope: Envelope,
    *,
    now: datetime,
    snaps: dict[str, RoutingSnapshot] | None = None,
) -> list[RoutingPlan | None]:
    """For each enquiry that will be a new lead, who gets it (``None``: it will not be one).
    ``snaps``: shared by the messages of a batch, so each decision sees the ones before it."""
    extraction = understood.extraction
    if extraction.kind != "lead" or not extraction.enquiries:
        return []
    if probe.waiting_run(session, policy.id, understood.parsed) is not None:
        return []  # an end-to-end probe (issue 14): no routing decision
    if find_replied_lead(session, policy.id, extraction, understood.parsed) is not None:
        return []
    snaps = {} if snaps is None else snaps
    if policy.id not in snaps:
        snaps[policy.id] = snapshot(session, policy)
    snap = snaps[policy.id]
    plans: list[RoutingPlan | None] = []
    for enquiry in extraction.enquiries:
        email, phones = identities(enquiry.customer, policy.country)
        contact = find_contact(session, policy.id, email, phones)
        if _resent_lead(
            session, policy.id, enquiry, envelope, now, contact.id if contact else None
        ) is not None or (contact is not None and _open_lead(session, policy.id, contact.id) is not None):
            plans.append(None)
            continue
        previous = previous_editor(session, contact.id if contact else None)
        facts = LeadFacts(
            source=enquiry.source[:100],
            type=enquiry.type,
            make=enquiry.vehicle.make,
            status=enquiry.vehicle.status,
            mailbox=envelope.mailbox,
            language=enquiry.language or policy.language,
            previous_editor=previous,
        )
        decision = decide_for(policy, snap, facts, now=now)
        plans.append(RoutingPlan(decision, previous, snap.user_ids))
        # Several new leads in one mail: each decision sees the ones before it.
        if decision.rotation is not None and decision.rotation_key is not None:
            snap.states[decision.rotation_key] = decision.rotation
        if decision.editor:
            person = snap.people[decision.editor]
            snap.people[decision.editor] = replace(person, open_leads=person.open_leads + 1)
    return plans


# -- write 1: contacts, leads, activities -------------------------------------------------------
def write_inbound(
    session: Session,
    envelope: Envelope,
    policy: DealerPolicy,
    understood: Understood,
    plans: list[RoutingPlan | None],
    *,
    now: datetime,
    timing: Timing,
    again: bool = False,
) -> IngestResult:
    """``again``: a person asked to recognise an ``unrecognised`` mail once more."""
    row = locked_inbound(session, envelope.id)
    if row is None:
        return IngestResult("missing")
    if row.state in INBOUND_FINAL_STATES and not (again and row.state == "unrecognised"):
        return IngestResult(row.state)
    parsed, extraction = understood.parsed, understood.extraction
    taken = probe.take(
        session, dealer_id=policy.id, inbound_id=row.id, via=envelope.via, parsed=parsed, now=now
    )
    if taken is not None:  # an end-to-end probe (issue 14): a probe lead, nothing else
        finish_inbound(row, "processed", "probe", now)
        return IngestResult("processed", lead_ids=[taken.id])
    if extraction.kind in ("auto_reply", "bounce", "bulk"):
        linked = None
        if extraction.bounce is not None:  # a report on one of our mails: onto its lead
            linked = record_bounce(session, policy.id, extraction.bounce, inbound_id=row.id, now=now)
        where = f" (lead {linked.id})" if linked is not None else ""
        finish_inbound(row, "ignored", f"{extraction.kind}: {extraction.reason}{where}", now)
        return IngestResult(
            "ignored", lead_ids=[linked.id] if linked is not None else [], reason=extraction.kind
        )

    replied = find_replied_lead(session, policy.id, extraction, parsed)
    if replied is not None:
        text = _strip_quote(parsed.body_text)[:20000]
        _activity(session, replied, now, "customer_reply", text or parsed.subject, inbound_id=row.id)
        replied.last_activity_at = now
        finish_inbound(row, "processed", f"reply to lead {replied.id}", now)
        return IngestResult("processed", lead_ids=[replied.id], reason="reply")

    if extraction.kind == "unrecognised" or not extraction.enquiries:
        finish_inbound(row, "unrecognised", extraction.reason or "no enquiry found", now)
        return IngestResult("unrecognised", reason="unrecognised")

    result = IngestResult("processed", reason="lead")
    fresh: list[bool] = []
    for ordinal, enquiry in enumerate(extraction.enquiries):
        plan = plans[ordinal] if ordinal < len(plans) else None
        lead, new = _apply_enquiry(session, policy, envelope, parsed, enquiry, ordinal, plan, now)
        result.lead_ids.append(lead.id)
        fresh.append(new)
        if new:
            result.created.append((enquiry.source[:100], enquiry.type, enquiry.format))
    if any(fresh):
        # The mails are still to be written: not final, so the sweeper comes back if we die.
        row.state, row.next_attempt_at, row.updated_at = "routed", now + timing.grace, now
        result.state = "routed"
        result.new_lead_ids = [lead_id for lead_id, new in zip(result.lead_ids, fresh, strict=True) if new]
    else:
        finish_inbound(row, "processed", extraction.reason or None, now)
    return result


def _activity(session: Session, lead: Lead, now: datetime, kind: str, text: str, **extra: object) -> None:
    session.add(LeadActivity(lead_id=lead.id, at=now, kind=kind, text=text, data={}, **extra))


_QUOTE_START = re.compile(
    r"^(>|-{2,} ?(original|ursprüngliche)|am .{5,80} schrieb|on .{5,80} wrote|von: |from: )", re.I
)


def _strip_quote(text: str) -> str:
    """The new part of a reply: up to the first quoted line or "On … wrote:" header."""
    kept: list[str] = []
    for line in text.splitlines():
        if _QUOTE_START.match(line.strip()):
            break
        kept.append(line)
    return "\n".join(kept).strip() or text.strip()


def fingerprint(enquiry: Enquiry) -> str:
    """What makes two mails the same enquiry: who, about what, saying what."""
    words = " ".join(re.findall(r"\w+", enquiry.message.lower()))[:2000]
    parts = [
        enquiry.source.lower(),
        normalise_email(enquiry.customer.email),
        ",".join(sorted(re.sub(r"\D", "", p) for p in enquiry.customer.phones)),
        enquiry.vehicle.make.lower(),
        enquiry.vehicle.model.lower(),
        enquiry.vehicle.vin,
        enquiry.vehicle.url,
        words,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _resent_lead(
    session: Session,
    dealer_id: str,
    enquiry: Enquiry,
    envelope: Envelope,
    now: datetime,
    contact_id: int | None,
) -> Lead | None:
    """The lead this enquiry already made: the same content within 30 days, the same sender's
    lead id (ADF, call), or, for the same customer, the same Message-ID (a relay's retry with
    another Received: line; a forger may copy a Message-ID, so another customer's does not
    count). Lookups each on its own index (an OR of them would read the whole table)."""
    queries = [
        select(Lead.id).where(
            Lead.dealer_id == dealer_id,
            Lead.fingerprint == fingerprint(enquiry),
            Lead.created_at >= now - RESEND_WINDOW,
        )
    ]
    if enquiry.external_id:
        queries.append(
            select(Lead.id).where(Lead.dealer_id == dealer_id, Lead.external_id == enquiry.external_id)
        )
    if envelope.message_id and contact_id is not None:
        twins = select(InboundMessage.id).where(
            InboundMessage.message_id == envelope.message_id,
            InboundMessage.dealer_id == dealer_id,
            InboundMessage.id != envelope.id,
        )
        queries.append(select(Lead.id).where(Lead.inbound_id.in_(twins), Lead.contact_id == contact_id))
    found = [lead_id for query in queries if (lead_id := session.scalar(query.order_by(Lead.id).limit(1)))]
    return session.get(Lead, min(found)) if found else None


def _source_id(session: Session, dealer_id: str, name: str) -> int | None:
    """The source's row, made when first seen (one lookup when it exists, as it nearly always does)."""
    if not name:
        return None
    query = select(Source.id).where(Source.dealer_id == dealer_id, Source.name == name[:100])
    source_id = session.scalar(query)
    if source_id is None:
        session.execute(
            dialect_insert(session, Source)
            .values(dealer_id=dealer_id, name=name[:100], rules={})
            .on_conflict_do_nothing(index_elements=["dealer_id", "name"])
        )
        source_id = session.scalar(query)
    return source_id


def _apply_enquiry(
    session: Session,
    policy: DealerPolicy,
    envelope: Envelope,
    parsed: ParsedMail,
    enquiry: Enquiry,
    ordinal: int,
    plan: RoutingPlan | None,
    now: datetime,
) -> tuple[Lead, bool]:
    """The enquiry as a resend, an activity on an open lead, or a new routed lead; the lead and
    whether it is new. :class:`RoutingConflict` when the plan no longer fits what is there."""
    contact = match_contact(session, policy.id, policy.country, enquiry.customer, now)
    resent = _resent_lead(session, policy.id, enquiry, envelope, now, contact.id)
    if resent is not None:
        if plan is not None:
            raise RoutingConflict(f"lead {resent.id} appeared meanwhile")
        why = "ADF status resend" if enquiry.resend else "same enquiry as before"
        _activity(
            session,
            resent,
            now,
            "resent",
            f"The enquiry arrived again ({why}); no new lead.",
            inbound_id=envelope.id,
        )
        return resent, False
    open_lead = _open_lead(session, policy.id, contact.id)
    if open_lead is not None:
        if plan is not None:
            raise RoutingConflict(f"lead {open_lead.id} of the contact appeared meanwhile")
        text = f"New enquiry ({enquiry.type}): {parsed.subject}\n{enquiry.message}".strip()
        _activity(session, open_lead, now, "enquiry", text[:20000], inbound_id=envelope.id)
        open_lead.last_activity_at = now
        if not open_lead.vehicle and not enquiry.vehicle.is_empty():
            open_lead.vehicle = enquiry.vehicle.as_dict()
        _activity(
            session, open_lead, now, "autoresponse_skipped", "follow-up on an open lead: not answered again"
        )
        return open_lead, False
    if plan is None or previous_editor(session, contact.id) != plan.previous_editor:
        raise RoutingConflict("the contact's history changed since the routing decision")

    decision = plan.decision
    lead = Lead(
        dealer_id=policy.id,
        contact_id=contact.id,
        inbound_id=envelope.id,
        ordinal=ordinal,
        type=enquiry.type,
        source_id=_source_id(session, policy.id, enquiry.source),
        editor_id=plan.user_ids[decision.editor] if decision.editor else None,
        group=decision.group,
        status="open",
        language=enquiry.language or policy.language,
        subject=parsed.subject[:500] or None,
        message=enquiry.message[:20000],
        vehicle=enquiry.vehicle.as_dict(),
        trade_ins=[v.as_dict() for v in enquiry.trade_ins],
        links=enquiry.links,
        format=enquiry.format,
        external_id=enquiry.external_id[:300] or None,
        sender_verification=enquiry.sender_check or None,
        fingerprint=fingerprint(enquiry),
        reply_token=secrets.token_hex(8),
        created_at=now,
        last_activity_at=now,
    )
    set_first_due(session, policy, lead, received_at=envelope.received_at)  # before the INSERT: one write
    session.add(lead)
    session.flush()
    who = contact.email or contact.phone or "unknown"
    _activity(
        session,
        lead,
        now,
        "received",
        f"Received via {envelope.via} from {who} ({enquiry.format}, {enquiry.source or 'no source'})",
        inbound_id=envelope.id,
    )
    if enquiry.sender_check_detail:
        _activity(session, lead, now, "sender_check", enquiry.sender_check_detail)
    apply_decision(session, policy, lead, decision, plan.user_ids, now=now)
    lead_events.created(session, policy, lead, now=now)  # facts and webhooks (issue 16)
    return lead, True


# -- the mails of a new lead --------------------------------------------------------------------
def lead_mails(
    session: Session,
    policy: DealerPolicy,
    lead_ids: list[int],
    envelope: Envelope,
    understood: Understood,
    now: datetime,
    timing: Timing,
) -> LeadMails:
    """Forward, new-lead notification and autoresponse of new leads, as plain data."""
    mails = LeadMails()
    for lead_id in lead_ids:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        contact = session.get(Contact, lead.contact_id)
        assert contact is not None
        editor = session.get(User, lead.editor_id) if lead.editor_id else None
        mails.specs += _staff_mails(policy, lead, contact, editor, envelope)
        answer = _autoresponse(
            session, policy, lead, contact, editor, envelope, understood.parsed, now, timing
        )
        if isinstance(answer, str):
            mails.skipped[lead.id] = answer
        else:
            mails.specs.append(answer)
    return mails


def _staff_mails(
    policy: DealerPolicy, lead: Lead, contact: Contact, editor: User | None, envelope: Envelope
) -> list[outbox.MailSpec]:
    staff = lead_context(policy.config, lead, contact, editor, policy.language)
    specs: list[outbox.MailSpec] = []
    if policy.forward_to:
        specs.append(
            outbox.MailSpec(
                kind="forward",
                purpose=f"forward:lead:{lead.id}",
                to=tuple(policy.forward_to),
                lang=policy.language,
                context=staff,
                lead_id=lead.id,
                reply_to=contact.email or None,
                original=envelope.raw,
            )
        )
    if editor is not None and editor.email:
        specs.append(
            outbox.MailSpec(
                kind="notification",
                purpose=f"notification:new:lead:{lead.id}:{editor.username}",
                to=(editor.email,),
                lang=policy.language,
                context=staff,
                lead_id=lead.id,
            )
        )
    return specs


def _answer_facts(
    policy: DealerPolicy, envelope: Envelope, parsed: ParsedMail, recipient: str, last: datetime | None
) -> AnswerFacts:
    ours = own_addresses(policy)
    return AnswerFacts(
        kind="lead",
        kind_reason="",
        our_mail=bool(parsed.header(OUR_HEADER)),
        recipient=recipient,
        recipient_takes_replies=not is_no_reply(recipient),
        recipient_is_ours=mailbox_key(recipient) in ours,
        # RFC 3834 §2: the envelope sender where we saw the envelope (our SMTP/LMTP intake),
        # else only the Return-Path the delivering server recorded.
        null_sender=parsed.return_path == ""
        or (envelope.via in RECEIVING_VIAS and envelope.envelope_from.strip() in ("", "<>")),
        auto_response_suppress=parsed.header("x-auto-response-suppress").lower(),
        last_autoresponse_at=last,
        window=policy.autoresponse_window,
    )


def _last_autoresponse(
    session: Session, dealer_id: str, recipient: str, *, other_than: str
) -> datetime | None:
    return session.scalar(
        select(func.max(OutboundMessage.created_at)).where(
            OutboundMessage.dealer_id == dealer_id,
            OutboundMessage.kind == "autoresponse",
            OutboundMessage.recipient == recipient,
            OutboundMessage.purpose != other_than,
        )
    )


def _autoresponse(
    session: Session,
    policy: DealerPolicy,
    lead: Lead,
    contact: Contact,
    editor: User | None,
    envelope: Envelope,
    parsed: ParsedMail,
    now: datetime,
    timing: Timing,
) -> outbox.MailSpec | str:
    """The autoresponse, or why the gate refused it."""
    recipient = contact.email or ""
    purpose = f"autoresponse:lead:{lead.id}"
    last = _last_autoresponse(session, policy.id, recipient, other_than=purpose)
    gate = autoresponse_gate(_answer_facts(policy, envelope, parsed, recipient, last), now=now)
    if not gate.send:
        return gate.reason
    lang = lead.language or policy.language
    return outbox.MailSpec(
        kind="autoresponse",
        purpose=purpose,
        to=(recipient,),
        lang=lang,
        context=lead_context(policy.config, lead, contact, editor, lang),
        lead_id=lead.id,
        group=lead.group,
        envelope_from="",  # RFC 3834 §3.3: the null sender, so nothing bounces back to a robot
        reply_to=reply_address(policy.sender_address, lead.reply_token or ""),
        in_reply_to=parsed.message_id or None,
        references=tuple(parsed.references),
        expires_at=now + timing.autoresponse_max_age,
    )


# -- write 2: the outbox ------------------------------------------------------------------------
def queue_mails(
    session: Session,
    policy: DealerPolicy,
    prepared: list[outbox.PreparedMail],
    skipped: dict[int, str],
    *,
    now: datetime,
    timing: Timing,
) -> list[int]:
    """Queue the prepared mails and record the autoresponses the gate refused; one whose
    recipient got another autoresponse since it was prepared is skipped too (RFC 3834 §2)."""
    for lead_id, why in skipped.items():
        _skip(session, lead_id, why, now)
    ids: list[int] = []
    for mail in prepared:
        spec = mail.spec
        if spec.kind == "autoresponse" and spec.lead_id is not None and spec.to:
            last = _last_autoresponse(session, policy.id, spec.to[0].lower(), other_than=spec.purpose)
            if last is not None and now - last < policy.autoresponse_window:
                _skip(session, spec.lead_id, f"{spec.to[0]} got an autoresponse at {last.isoformat()}", now)
                continue
        outbound_id = outbox.queue(session, mail, now=now, grace=timing.grace)
        if outbound_id is not None and mail.raw is not None:
            ids.append(outbound_id)
    return ids


def _skip(session: Session, lead_id: int, why: str, now: datetime) -> None:
    """Record a refused autoresponse once (a resumed ingest must not record it again)."""
    done = session.scalar(
        select(LeadActivity.id)
        .where(LeadActivity.lead_id == lead_id, LeadActivity.kind == "autoresponse_skipped")
        .limit(1)
    )
    if done is None:
        session.add(LeadActivity(lead_id=lead_id, at=now, kind="autoresponse_skipped", text=why, data={}))
