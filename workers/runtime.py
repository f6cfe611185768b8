"""Everything a process of ours needs, built from settings: database, broker, actors, relay.

Actors are thin: they carry row ids only, load the row, call the rule code, persist, and
enqueue the next step after the commit. Retries are not the broker's: a failure is written
to the row with the time of the next attempt, and the sweeper enqueues it then. So retry
state survives any restart and shows in ``lms ops status``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from dramatiq import Broker, Worker
from sqlalchemy import select

from intake.store import announce
from models import metrics
from models.clock import Clock, system_clock
from models.db import Database
from models.policy import policy_for
from models.settings import Settings
from models.tables import Dealer
from workers import webhooks
from workers.accounts import prune as prune_sign_ins
from workers.broker import make_broker, queue_depths
from workers.coalesce import Coalescer
from workers.delivery import SendPolicy, backoff, send_outbound
from workers.escalations import PassResult, next_event, run_pass
from workers.heartbeat import beat
from workers.ingest import Timing, ingest_batch, locked_inbound
from workers.parse_facts import ReceivingSide, TxtResolver
from workers.privacy import apply_retention
from workers.probe import PeriodicProbes
from workers.relay import Relay, relay_from_url
from workers.sweeper import SweepResult, sweep
from workers.weekly_summary import WeeklyResult, WeeklySummaries

log = logging.getLogger(__name__)

# How often the scheduler asks whether a dealer's weekly summary is due.
WEEKLY_CHECK_SECONDS = 60.0


@dataclass
class Runtime:
    settings: Settings
    db: Database
    broker: Broker
    relay: Relay
    clock: Clock = system_clock
    # DNS TXT lookups of our own DKIM check (LMS_DKIM_VERIFY); None: the system's resolver.
    dns_txt: TxtResolver | None = None
    # Set by `lms run` (intake.priority.IntakeFirst): ingests wait while the SMTP intake in
    # the same process has mails waiting for their commit.
    ingest_gate: AbstractContextManager[Any] | None = None
    ingest_actor: dramatiq.Actor = field(init=False)
    send_actor: dramatiq.Actor = field(init=False)
    webhook_actor: dramatiq.Actor = field(init=False)
    weekly: WeeklySummaries = field(init=False)
    _ingest_queue: Coalescer | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        prefix = self.settings.queue_prefix
        options = {"max_retries": 0, "time_limit": int(self.settings.actor_time_limit_seconds * 1000)}
        self.ingest_actor = dramatiq.Actor(
            self.ingest,
            broker=self.broker,
            actor_name=f"{prefix}.ingest",
            queue_name=f"{prefix}.ingest",
            priority=0,
            options=dict(options),
        )
        self.send_actor = dramatiq.Actor(
            self._send_message,
            broker=self.broker,
            actor_name=f"{prefix}.send",
            queue_name=f"{prefix}.send",
            priority=0,
            options=dict(options),
        )
        # Webhooks (issue 16): their own outbox and queue; events written in any transaction
        # of this process are handed on after its commit (workers.webhooks.set_notifier).
        self.webhook_actor = dramatiq.Actor(
            self._deliver_webhooks,
            broker=self.broker,
            actor_name=f"{prefix}.webhook",
            queue_name=f"{prefix}.webhook",
            priority=0,
            options=dict(options),
        )
        webhooks.set_notifier(self.db.engine, self.enqueue_webhooks)
        self.weekly = WeeklySummaries(
            self.db,
            grace=self.grace,
            public_url=self.settings.web_public_url or f"http://{self.settings.web_listen}",
        )

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.settings.sweep_grace_seconds)

    @property
    def timing(self) -> Timing:
        return Timing(
            grace=self.grace,
            autoresponse_max_age=timedelta(seconds=self.settings.autoresponse_max_age_seconds),
        )

    @property
    def receiving(self) -> ReceivingSide:
        return ReceivingSide.from_settings(self.settings.authserv_id, self.settings.dkim_verify, self.dns_txt)

    @property
    def send_policy(self) -> SendPolicy:
        return SendPolicy(
            max_attempts=self.settings.send_max_attempts,
            lease=timedelta(
                seconds=self.settings.send_lease_seconds or max(self.settings.relay_timeout * 4, 60)
            ),
        )

    # -- enqueueing -------------------------------------------------------------------------
    def intake_handoff(self, *, worker_here: bool) -> tuple[Callable[[int], None] | None, timedelta]:
        """How an intake in this process hands a stored message on: (enqueue, grace).

        With the in-process broker and no worker in this process an enqueued message would go
        nowhere: store it due at once instead, for the sweeper of the process with the workers.
        """
        if worker_here or not self.settings.broker_url.startswith("memory"):
            return self.enqueue_ingest, self.grace
        return None, timedelta(0)

    def enqueue_ingest(self, inbound_ids: int | list[int]) -> None:
        """Hand stored messages to ingest; those arriving within a few milliseconds of each
        other go as one batch (see :mod:`workers.coalesce`)."""
        if self._ingest_queue is None:
            self._ingest_queue = Coalescer(self.ingest_actor.send)
        self._ingest_queue.add(inbound_ids)

    def enqueue_send(self, outbound_ids: int | list[int]) -> None:
        """One message for mails that travel together (a lead's answer, forward and notification)."""
        self.send_actor.send([outbound_ids] if isinstance(outbound_ids, int) else list(outbound_ids))

    def enqueue_webhooks(self, delivery_ids: list[int]) -> None:
        """One message per subscription is enough: its actor sends everything due, in order."""
        for delivery_id in delivery_ids:
            self.webhook_actor.send(delivery_id)

    @property
    def webhook_policy(self) -> webhooks.WebhookPolicy:
        return webhooks.WebhookPolicy(
            max_attempts=self.settings.webhook_max_attempts, timeout=self.settings.webhook_timeout_seconds
        )

    # -- actor bodies -----------------------------------------------------------------------
    def ingest(self, inbound_ids: int | list[int]) -> None:
        if self.ingest_gate is not None:
            with self.ingest_gate:
                self._ingest(inbound_ids)
        else:
            self._ingest(inbound_ids)

    def _ingest(self, inbound_ids: int | list[int]) -> None:
        now = self.clock()
        ids = [inbound_ids] if isinstance(inbound_ids, int) else list(inbound_ids)
        try:
            results = ingest_batch(self.db, ids, now=now, timing=self.timing, receiving=self.receiving)
        except Exception as exc:  # the database itself failed: every message of the batch
            log.exception("ingest of inbound messages %s failed", ids)
            results = dict.fromkeys(ids, exc)
        outbound: list[int] = []
        for inbound_id, result in results.items():
            if isinstance(result, Exception):
                self._record_ingest_failure(inbound_id, result, now)
            else:
                outbound += result.outbound_ids
        if outbound:
            announce(self.enqueue_send, outbound)

    def _record_ingest_failure(self, inbound_id: int, exc: Exception, now: datetime) -> None:
        with self.db.session() as session:
            row = locked_inbound(session, inbound_id)
            if row is None:
                return
            row.attempts += 1
            row.error = f"{type(exc).__name__}: {exc}"[:4000]
            row.updated_at = now
            if row.attempts >= self.settings.ingest_max_attempts:
                row.state, row.next_attempt_at = "dead", None
            else:
                row.state, row.next_attempt_at = "failed", now + backoff(row.attempts)
            dead = row.state == "dead"
        if dead:  # committed
            metrics.inbound_final("dead", "error")
            metrics.dead_letter("inbound")

    def _send_message(self, outbound_ids: int | list[int]) -> None:
        self.send(outbound_ids)

    def send(self, outbound_ids: int | list[int]) -> dict[int, str]:
        ids = [outbound_ids] if isinstance(outbound_ids, int) else list(outbound_ids)
        return send_outbound(self.db, ids, self.relay, now=self.clock(), policy=self.send_policy)

    def _deliver_webhooks(self, delivery_id: int) -> None:
        self.deliver_webhooks(delivery_id)

    def deliver_webhooks(self, delivery_id: int) -> webhooks.Drained | None:
        """Everything due of the subscription this row belongs to, in order."""
        found = webhooks.subscription_of(self.db, delivery_id)
        if found is None:
            return None
        drained = webhooks.deliver_subscription(self.db, *found, clock=self.clock, policy=self.webhook_policy)
        if drained.more:
            self.webhook_actor.send(delivery_id)
        return drained

    def weekly_summaries_once(self, now: datetime | None = None) -> WeeklyResult:
        result = self.weekly.run(now=now or self.clock())
        if result.outbound_ids:
            announce(self.enqueue_send, result.outbound_ids)
        return result

    # -- sweeper ----------------------------------------------------------------------------
    def sweep_once(self, now: datetime | None = None) -> SweepResult:
        return sweep(
            self.db,
            now=now or self.clock(),
            grace=self.grace,
            enqueue_ingest=self.enqueue_ingest,
            enqueue_send=self.enqueue_send,
            enqueue_webhook=lambda delivery_id: self.enqueue_webhooks([delivery_id]),
        )

    def escalate_once(self, now: datetime | None = None) -> PassResult:
        result = run_pass(self.db, now=now or self.clock(), grace=self.grace, recover_after=self.grace)
        metrics.escalations_fired(result.fired)
        if result.outbound_ids:
            announce(self.enqueue_send, result.outbound_ids)
        return result

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting per queue; empty for the in-process broker (nothing outlives us)."""
        if self.settings.broker_url.startswith("memory"):
            return {}
        self.broker.declare_queue(self.ingest_actor.queue_name)
        self.broker.declare_queue(self.send_actor.queue_name)
        self.broker.declare_queue(self.webhook_actor.queue_name)
        return queue_depths(self.broker)

    def retention_once(self, now: datetime | None = None) -> dict[str, int]:
        """Apply every dealer's retention periods once (a batch per dealer and kind)."""
        now = now or self.clock()
        totals = {"leads": 0, "contacts": 0, "mails": 0}
        with self.db.read() as session:
            dealers = [policy_for(d) for d in session.scalars(select(Dealer))]
        for policy in dealers:
            retention = policy.config.retention
            if not (retention.completed_leads or retention.raw_mails):
                continue
            with self.db.session() as session:
                done = apply_retention(session, policy, now=now)
            for key, value in done.items():
                totals[key] += value
        with self.db.session() as session:
            pruned = prune_sign_ins(session, now=now)
        if any(totals.values()) or pruned:
            log.info("retention: %s; sign-in rows forgotten: %d", totals, pruned)
        return totals

    def start_worker(self, threads: int | None = None) -> Worker:
        # Without process_boot the TimeLimit middleware never starts its timer thread.
        self.broker.emit_after("process_boot")
        worker = Worker(
            self.broker, worker_threads=threads or self.settings.worker_threads, worker_timeout=200
        )
        worker.start()
        return worker

    def close(self) -> None:
        webhooks.set_notifier(self.db.engine, None)
        if self._ingest_queue is not None:
            self._ingest_queue.close()
        self.broker.close()
        self.db.dispose()


def build_runtime(settings: Settings, *, clock: Clock = system_clock) -> Runtime:
    db = Database(settings.database_url, **settings.database_options())
    broker = make_broker(settings.broker_url)
    relay = relay_from_url(
        settings.relay_url, timeout=settings.relay_timeout, db=db, secret_key=settings.secret_key
    )
    return Runtime(settings=settings, db=db, broker=broker, relay=relay, clock=clock)


class Scheduler:
    """The time-based work of a process: the sweeper every ``interval`` seconds, escalations
    whenever one is due (it wakes at the next event time, and at least every ``tick`` seconds,
    because another process may have created an earlier one)."""

    def __init__(self, runtime: Runtime, interval: float, tick: float = 5.0) -> None:
        self.runtime = runtime
        self.interval = interval
        self.tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lms-scheduler", daemon=True)
        self.probes = PeriodicProbes(runtime.db, runtime.settings)  # issue 14: sends, never waits

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        last_sweep = last_retention = last_weekly = last_beat = 0.0
        # The earliest escalation event as the end of the last pass saw it (None: ask now).
        upcoming: datetime | None = None
        known = False
        while not self._stop.is_set():
            wait = self.tick
            started, pass_started = self.runtime.clock(), time.monotonic()
            try:
                # How late the earliest due escalation is handled (the scheduler's lag).
                due = upcoming if known else next_event(self.runtime.db)
                lag = max(0.0, (started - due).total_seconds()) if due is not None else 0.0
                if time.monotonic() - last_sweep >= self.interval:
                    self.runtime.sweep_once()
                    last_sweep = time.monotonic()
                if time.monotonic() - last_retention >= self.runtime.settings.retention_interval_seconds:
                    self.runtime.retention_once()
                    last_retention = time.monotonic()
                if time.monotonic() - last_weekly >= WEEKLY_CHECK_SECONDS:
                    self.runtime.weekly_summaries_once()  # issue 16
                    last_weekly = time.monotonic()
                result = self.runtime.escalate_once()
                if result.fired or result.skipped:
                    log.info("escalations fired: %s (skipped %d)", result.fired, result.skipped)
                self.probes.once(self.runtime.clock())
                upcoming, known = next_event(self.runtime.db), True
                if upcoming is not None:
                    wait = min(wait, max(0.05, (upcoming - self.runtime.clock()).total_seconds()))
                # At most one heartbeat write a second, however often due events wake the loop.
                if time.monotonic() - last_beat >= 1.0:
                    finished = self.runtime.clock()
                    beat(self.runtime.db, "scheduler", started, finished, lag=lag, interval=self.interval)
                    last_beat = time.monotonic()
                metrics.scheduler_pass(time.monotonic() - pass_started)
            except Exception:
                known = False
                log.exception("scheduler pass failed; trying again in %.0fs", self.tick)
            self._stop.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
