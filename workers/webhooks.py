"""Webhooks to the dealer's systems: the lead events as signed JSON (or ADF/XML), through an
outbox of their own with the guarantees of the mail outbox.

- **Stored first.** :func:`emit` writes one ``webhook_deliveries`` row per event and
  subscription inside the transaction that caused the event (the lead's first write, an
  assignment, a reply, a completion, a stage that fired): no event without its cause, no cause
  without its event. The body is rendered then, once; every attempt sends the same bytes.
- **In order, per subscription.** A subscription's rows go out strictly by id, one at a time:
  a later event waits while an earlier one of the same subscription is being retried. Events of
  one lead are written under that lead's row lock, so their ids are in the order they happened;
  a receiver that was down gets everything in order once it answers again. A row that died
  (attempts exhausted) no longer holds the others back; replaying it sends it late, and the
  receiver knows it again by its ``webhook-id``.
- **Retried, then dead.** Any answer but 2xx, a refused connection or a timeout is a failed
  attempt: backoff doubling from 30 s up to an hour, ``dead`` after ``max_attempts``
  (``LMS_WEBHOOK_MAX_ATTEMPTS``). ``lms ops retry --webhook ID|--all-failed`` puts it back.
- **Signed** as Standard Webhooks (:mod:`models.webhook_signing`), with a fresh timestamp on
  each attempt; ``webhook-id`` is the idempotency key.
- The broker carries only row ids; a lost message is found again by the sweeper (:func:`due_heads`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session

from models import metrics
from models.adf_export import lead_adf
from models.db import Database
from models.dealer_config import WebhookConfig
from models.lead_views import lead_dict
from models.log_context import log_ids
from models.policy import DealerPolicy, UnknownDealer, load_policy
from models.tables import Lead
from models.webhook_signing import headers as signed_headers
from models.webhook_tables import WEBHOOK_PENDING_STATES, WebhookDelivery
from workers import webhook_client
from workers.delivery import backoff

log = logging.getLogger(__name__)

PROBE_FORMAT = "probe"
CONTENT_TYPES = {"json": "application/json", "adf": "application/xml; charset=utf-8"}
_PENDING_KEY = "lms_webhook_ids"


@dataclass(frozen=True)
class WebhookPolicy:
    max_attempts: int = 12
    timeout: float = 10.0
    first_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=1)
    # At most this many deliveries of one subscription per actor message; then it hands on.
    batch: int = 100

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.timeout * 3 + 30)

    def backoff(self, attempts: int) -> timedelta:
        return backoff(attempts, first=self.first_backoff, cap=self.max_backoff)


# -- writing events (inside the caller's transaction) --------------------------------------------
def _body(
    hook: WebhookConfig,
    event_id: str,
    kind: str,
    lead: dict[str, Any],
    extra: dict[str, Any],
    *,
    policy: DealerPolicy,
    now: datetime,
) -> bytes:
    if hook.format == "adf":
        return lead_adf(lead, dealer_name=policy.name).encode("utf-8")
    payload = {
        "id": event_id,
        "type": kind,
        "timestamp": now.isoformat(),
        "dealer": policy.id,
        "data": {"lead": lead, **extra},
    }
    return json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")


def emit(
    session: Session,
    policy: DealerPolicy,
    lead: Lead,
    kind: str,
    *,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> list[int]:
    """Write the event for every subscription of the dealer that takes it; the new row ids."""
    hooks = [hook for hook in policy.config.webhooks if kind in hook.events]
    if not hooks or lead.format == PROBE_FORMAT:
        return []
    session.flush()
    # Relationships as they are now in this transaction (an assignment changed editor_id).
    session.expire(lead, ["editor", "source", "contact", "completion_reason"])
    data = lead_dict(session, lead, now=now, with_activities=True)
    ids = []
    for hook in hooks:
        event_id = f"evt_{uuid.uuid4().hex}"
        row = WebhookDelivery(
            event_id=event_id,
            dealer_id=policy.id,
            subscription=hook.key,
            event=kind,
            lead_id=lead.id,
            content_type=CONTENT_TYPES[hook.format],
            body=_body(hook, event_id, kind, data, extra or {}, policy=policy, now=now),
            state="queued",
            attempts=0,
            created_at=now,
            next_attempt_at=now,  # due at once: the sweeper hands it on if no enqueue does
            updated_at=now,
        )
        session.add(row)
        session.flush()
        ids.append(row.id)
    session.info.setdefault(_PENDING_KEY, []).extend(ids)
    return ids


# After the commit, hand the new rows to the workers of this process (if it has any): the
# events are written deep inside transactions of ingest, the pane, the CLI and the scheduler,
# and this is the one place that sees them all commit.
_NOTIFIERS: dict[int, Callable[[list[int]], None]] = {}
_NOTIFIERS_LOCK = threading.Lock()


def set_notifier(engine: Engine, notify: Callable[[list[int]], None] | None) -> None:
    with _NOTIFIERS_LOCK:
        if notify is None:
            _NOTIFIERS.pop(id(engine), None)
        else:
            _NOTIFIERS[id(engine)] = notify


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released (SQLAlchemy fires this for those too): not committed yet
    ids = session.info.pop(_PENDING_KEY, None)
    if not ids:
        return
    bind = session.get_bind()
    notify = _NOTIFIERS.get(id(getattr(bind, "engine", bind)))
    if notify is None:
        return
    try:
        notify(ids)
    except Exception:  # stored is what counts: the sweeper hands them on
        log.warning("could not enqueue webhook deliveries %s; the sweeper will", ids, exc_info=True)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING_KEY, None)


# -- delivering -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    id: int
    event_id: str
    event: str
    url: str
    secret: str | None
    body: bytes
    content_type: str
    attempts: int
    problem: str | None = None  # why it cannot even be tried (a missing secret)


def _hook(session: Session, dealer_id: str, subscription: str) -> WebhookConfig | None:
    try:
        policy = load_policy(session, dealer_id)
    except UnknownDealer:
        return None
    return next((h for h in policy.config.webhooks if h.key == subscription), None)


def claim_head(
    db: Database, dealer_id: str, subscription: str, *, now: datetime, policy: WebhookPolicy
) -> Attempt | None:
    """Lease the subscription's oldest pending row if it may go now; None while it is leased by
    another worker, waiting for its backoff, or nothing is pending."""
    with db.session() as session:
        while True:
            head = session.scalars(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.dealer_id == dealer_id,
                    WebhookDelivery.subscription == subscription,
                    WebhookDelivery.state.in_(WEBHOOK_PENDING_STATES),
                )
                .order_by(WebhookDelivery.id)
                .limit(1)
                .with_for_update()
            ).first()
            if head is None:
                return None
            waiting = head.next_attempt_at is not None and head.next_attempt_at > now
            if waiting and (head.state == "sending" or head.attempts > 0):
                return None  # another worker holds the lease, or the backoff runs
            hook = _hook(session, dealer_id, subscription)
            if hook is None:
                head.state, head.next_attempt_at, head.updated_at = "dead", None, now
                head.last_error = (
                    f"no webhook {subscription!r} is configured for dealer {dealer_id!r} any more"
                )
                continue
            secret = hook.secret if hook.secret is not None else os.environ.get(hook.secret_env or "")
            head.state, head.attempts = "sending", head.attempts + 1
            head.next_attempt_at, head.updated_at = now + policy.lease, now
            return Attempt(
                id=head.id,
                event_id=head.event_id,
                event=head.event,
                url=hook.url,
                secret=secret,
                body=head.body,
                content_type=head.content_type,
                attempts=head.attempts,
                problem=None if secret else f"the environment variable {hook.secret_env} is not set",
            )


def attempt(item: Attempt, *, now: datetime, timeout: float) -> webhook_client.Response:
    if item.problem or not item.secret:
        return webhook_client.Response(None, item.problem or "no secret")
    headers = {
        **signed_headers(item.secret, item.event_id, int(now.timestamp()), item.body),
        "Content-Type": item.content_type,
        "X-LMS-Event": item.event,
    }
    return webhook_client.post(item.url, item.body, headers, timeout=timeout)


def record(
    db: Database, item: Attempt, response: webhook_client.Response, *, now: datetime, policy: WebhookPolicy
) -> str:
    with db.session() as session:
        row = session.get(WebhookDelivery, item.id, with_for_update=True)
        if row is None or row.state != "sending" or row.attempts != item.attempts:
            return row.state if row is not None else "missing"  # replayed or taken over meanwhile
        ids = log_ids(webhook_id=row.id, lead_id=row.lead_id, dealer=row.dealer_id)  # issue 14
        row.updated_at, row.last_status = now, response.status
        if response.error is None:
            row.state, row.delivered_at, row.next_attempt_at, row.last_error = "delivered", now, None, None
        elif row.attempts >= policy.max_attempts:
            row.state, row.next_attempt_at, row.last_error = "dead", None, response.error
        else:
            row.state, row.next_attempt_at = "queued", now + policy.backoff(row.attempts)
            row.last_error = response.error
        state = row.state
    metrics.webhook_attempt(state)  # committed
    if response.error:
        log.warning(
            "webhook %s (%s) attempt %s: %s → %s",
            item.id,
            item.event,
            item.attempts,
            response.error,
            state,
            extra=ids,
        )
    else:
        log.info("webhook %s (%s): delivered", item.id, item.event, extra=ids)
    return state


@dataclass
class Drained:
    delivered: list[int]
    failed: list[int]
    more: bool  # the batch ended with rows still due: hand on


def deliver_subscription(
    db: Database, dealer_id: str, subscription: str, *, clock: Callable[[], datetime], policy: WebhookPolicy
) -> Drained:
    """Send the subscription's pending rows in order until one fails or none is due."""
    result = Drained([], [], False)
    for _ in range(policy.batch):
        item = claim_head(db, dealer_id, subscription, now=clock(), policy=policy)
        if item is None:
            return result
        response = attempt(item, now=clock(), timeout=policy.timeout)
        state = record(db, item, response, now=clock(), policy=policy)
        if state == "delivered":
            result.delivered.append(item.id)
        else:
            result.failed.append(item.id)
            if state != "dead":
                return result  # it waits for its backoff, and the later ones with it
    result.more = True
    return result


def subscription_of(db: Database, delivery_id: int) -> tuple[str, str] | None:
    with db.read() as session:
        row = session.execute(
            select(WebhookDelivery.dealer_id, WebhookDelivery.subscription).where(
                WebhookDelivery.id == delivery_id
            )
        ).first()
    return (row.dealer_id, row.subscription) if row is not None else None


def due_heads(session: Session, *, now: datetime) -> list[int]:
    """The head row of every subscription that has one due now (the sweeper enqueues these):
    fresh, past its backoff, or with a lease that ran out (its sender is presumed dead)."""
    heads = select(func.min(WebhookDelivery.id)).where(WebhookDelivery.state.in_(WEBHOOK_PENDING_STATES))
    heads = heads.group_by(WebhookDelivery.dealer_id, WebhookDelivery.subscription)
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.next_attempt_at).where(WebhookDelivery.id.in_(heads))
    ).all()
    return [row.id for row in rows if row.next_attempt_at is None or row.next_attempt_at <= now]


def retry(
    session: Session, *, now: datetime, delivery_id: int | None = None, all_failed: bool = False
) -> int:
    """Put dead rows back, due now (the sweeper hands them on at once)."""
    if not (delivery_id or all_failed):
        return 0
    query = update(WebhookDelivery).where(WebhookDelivery.state == "dead")
    if delivery_id:
        query = query.where(WebhookDelivery.id == delivery_id)
    return int(
        session.execute(
            query.values(state="queued", attempts=0, next_attempt_at=now, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
    )
