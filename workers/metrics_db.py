"""The gauges that are the database's truth, read at scrape time whatever process is alive:
queue depth and the age of the oldest pending row per table, each IMAP mailbox's last
success, the scheduler's heartbeat, the latest end-to-end probe per dealer.

A collector on the per-scrape registry (beside the MultiProcessCollector), never registered in
a process: prometheus_client's multiprocess mode has no process-side collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.db import Database
from models.ops_tables import Heartbeat, ProbeRun
from models.policy import policy_for
from models.tables import (
    INBOUND_PENDING_STATES,
    OUTBOUND_PENDING_STATES,
    Dealer,
    ImapStatus,
    InboundMessage,
    OutboundMessage,
)
from models.webhook_tables import WEBHOOK_PENDING_STATES, WebhookDelivery

PROBE_FINAL_STATES = ("ok", "failed", "timeout")


def account_labels(key: str) -> tuple[str, str]:
    """(dealer, mailbox) from an IMAP account key ``dealer:user@host:port`` (intake.imap): the
    configured user, which may itself contain ``@``."""
    dealer, _, rest = key.partition(":")
    user, _, _ = rest.rpartition("@")
    return dealer, user or rest


def queues(session: Session, now: datetime) -> dict[str, tuple[int, float]]:
    """Pending rows and the oldest one's age in seconds, per table (inbound, outbound, webhook)."""
    tables: dict[str, tuple[Any, Any, tuple[str, ...]]] = {
        "inbound": (InboundMessage.state, InboundMessage.received_at, INBOUND_PENDING_STATES),
        "outbound": (OutboundMessage.state, OutboundMessage.created_at, OUTBOUND_PENDING_STATES),
        "webhook": (WebhookDelivery.state, WebhookDelivery.created_at, WEBHOOK_PENDING_STATES),
    }
    found = {}
    for name, (state, stamp, pending) in tables.items():
        count, oldest = session.execute(select(func.count(), func.min(stamp)).where(state.in_(pending))).one()
        found[name] = (int(count or 0), max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    return found


class DatabaseCollector(Collector):
    def __init__(self, db: Database, clock: Callable[[], datetime], *, dealer: str | None = None) -> None:
        self.db = db
        self.clock = clock
        self.dealer = dealer  # only this dealer's labelled series (an admin's token)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        with self.db.read() as session:
            depth = GaugeMetricFamily("lms_queue_depth", "Pending rows per table.", labels=["queue"])
            oldest = GaugeMetricFamily(
                "lms_queue_oldest_pending_seconds",
                "Age of the oldest pending row per table.",
                labels=["queue"],
            )
            for name, (count, age) in queues(session, now).items():
                depth.add_metric([name], count)
                oldest.add_metric([name], age)
            yield depth
            yield oldest
            yield self._imap(session)
            yield from self._scheduler(session)
            yield from self._probes(session)

    def _imap(self, session: Session) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "lms_imap_last_success_timestamp_seconds",
            "When each IMAP mailbox was last read completely (Unix time).",
            labels=["dealer", "mailbox"],
        )
        # Only mailboxes still configured: the status row of a mailbox moved to another host or
        # removed stays in the table, and its frozen time would alarm forever.
        configured = {
            policy.imap_key(box)
            for policy in map(policy_for, session.scalars(select(Dealer)))
            for box in policy.imap
        }
        for key, at in session.execute(select(ImapStatus.account, ImapStatus.last_success_at)):
            dealer, mailbox = account_labels(key)
            if at is not None and key in configured and self.dealer in (None, dealer):
                family.add_metric([dealer, mailbox], at.timestamp())
        return family

    def _scheduler(self, session: Session) -> Iterator[GaugeMetricFamily]:
        beat = session.get(Heartbeat, "scheduler")
        lag = GaugeMetricFamily("lms_scheduler_lag_seconds", "How late the last scheduler pass started.")
        last = GaugeMetricFamily(
            "lms_scheduler_last_pass_timestamp_seconds", "When the last scheduler pass finished (Unix time)."
        )
        if beat is not None:
            lag.add_metric([], beat.lag_seconds)
            last.add_metric([], beat.finished_at.timestamp())
        yield lag
        yield last

    def _probes(self, session: Session) -> Iterator[GaugeMetricFamily]:
        latest = (
            select(ProbeRun.dealer_id, func.max(ProbeRun.id).label("id"))
            .where(ProbeRun.state.in_(PROBE_FINAL_STATES))
            .group_by(ProbeRun.dealer_id)
            .subquery()
        )
        runs = session.scalars(select(ProbeRun).join(latest, ProbeRun.id == latest.c.id)).all()
        seconds = GaugeMetricFamily(
            "lms_probe_seconds", "The latest probe's time from sending to its lead.", labels=["dealer"]
        )
        success = GaugeMetricFamily(
            "lms_probe_success", "The latest probe succeeded (1) or not (0).", labels=["dealer"]
        )
        when = GaugeMetricFamily(
            "lms_probe_last_run_timestamp_seconds",
            "When the latest probe ended (Unix time).",
            labels=["dealer"],
        )
        for run in runs:
            if self.dealer not in (None, run.dealer_id):
                continue
            if run.seconds is not None:
                seconds.add_metric([run.dealer_id], run.seconds)
            success.add_metric([run.dealer_id], 1.0 if run.state == "ok" else 0.0)
            when.add_metric([run.dealer_id], (run.finished_at or run.started_at).timestamp())
        yield seconds
        yield success
        yield when
