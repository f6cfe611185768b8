"""Our system assembled in the test process: database, broker, workers and SMTP intake."""

from __future__ import annotations

import shutil
import smtplib
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from intake.smtp import IntakeHandler, make_smtp_controller
from models.clock import Clock, system_clock
from models.config_apply import apply_config
from models.dealer_config import load_config_file
from models.migrate import upgrade
from models.settings import Settings
from models.tables import InboundMessage, Lead, OutboundMessage
from tests.support.mails import DEMO_MAILBOX
from tests.support.services import REDIS_URL, free_port, unique
from workers.runtime import Runtime, build_runtime

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "examples" / "lms.toml"


def demo_config_with(tmp_path: Path, extra: str) -> Path:
    """The demo dealer file with ``extra`` TOML appended (its assets copied beside it)."""
    for asset in ("header.png", "expose.pdf"):
        shutil.copy(DEMO_CONFIG.parent / asset, tmp_path / asset)
    path = tmp_path / "dealer.toml"
    path.write_text(DEMO_CONFIG.read_text() + extra)
    return path


def prepare_database(runtime: Runtime, config: Path = DEMO_CONFIG) -> None:
    upgrade(runtime.db)
    with runtime.db.session() as session:
        apply_config(session, load_config_file(config), now=runtime.clock())


def redis_runtime(database_url: str, prefix: str, outbox: Path) -> tuple[dict[str, str], Runtime]:
    """Settings for worker processes on the machine's Redis, and a runtime of the test's own
    on the same database (migrated and configured) to store mails and watch the outcome."""
    settings = {
        "database_url": database_url,
        "broker_url": REDIS_URL,
        "queue_prefix": prefix,
        "relay_url": f"maildir://{outbox}",
    }
    runtime = build_runtime(Settings(**settings))  # type: ignore[arg-type]
    prepare_database(runtime)
    return settings, runtime


class Stack:
    def __init__(
        self,
        database_url: str,
        *,
        relay_url: str,
        broker_url: str = "memory://",
        clock: Clock = system_clock,
        config: Path = DEMO_CONFIG,
        worker_threads: int | None = 2,
        smtp: bool = True,
        smtp_port: int | None = None,
        **settings: Any,
    ) -> None:
        self.settings = Settings(
            database_url=database_url,
            broker_url=broker_url,
            relay_url=relay_url,
            queue_prefix=unique("lmstest"),
            relay_timeout=5,
            **settings,
        )
        self.runtime = build_runtime(self.settings, clock=clock)
        prepare_database(self.runtime, config)
        self.worker = self.runtime.start_worker(worker_threads) if worker_threads else None
        self.controller = None
        self.smtp_port = 0
        if smtp:
            self.smtp_port = smtp_port or free_port()
            handler = IntakeHandler(
                self.runtime.db,
                enqueue=self.runtime.enqueue_ingest,
                clock=clock,
                # As lms/acceptors.py wires it: the intake waits for SQLite's lock as long as
                # the busy timeout says (a test that sets it short must not wait 15 s).
                sqlite_lock_wait=self.settings.sqlite_busy_timeout_ms / 1000,
            )
            self.controller = make_smtp_controller(
                handler, host="127.0.0.1", port=self.smtp_port, max_bytes=self.settings.smtp_max_bytes
            )
            self.controller.start()

    @property
    def db(self) -> Any:
        return self.runtime.db

    def send(
        self, raw: bytes, *, to: str = DEMO_MAILBOX, sender: str = "erika@example.org"
    ) -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as client:
            return client.sendmail(sender, [to], raw)

    def count(self, model: Any, **where: Any) -> int:
        with self.db.session() as session:
            query = select(func.count()).select_from(model)
            for key, value in where.items():
                query = query.where(getattr(model, key) == value)
            return int(session.scalar(query) or 0)

    def leads(self) -> list[Lead]:
        with self.db.session() as session:
            return list(session.scalars(select(Lead).order_by(Lead.id)).unique())

    def inbound(self) -> list[InboundMessage]:
        with self.db.session() as session:
            return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))

    def outbound(self, kind: str | None = None) -> list[OutboundMessage]:
        with self.db.session() as session:
            query = select(OutboundMessage).order_by(OutboundMessage.id)
            if kind:
                query = query.where(OutboundMessage.kind == kind)
            return list(session.scalars(query))

    def close(self) -> None:
        if self.controller is not None:
            self.controller.stop()
        if self.worker is not None:
            self.worker.stop(timeout=5000)
        self.runtime.close()
