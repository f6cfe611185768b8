"""An intake server of ours in the test process, with the knobs a test needs."""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake.smtp import (
    IntakeController,
    IntakeHandler,
    IntakeLimits,
    IntakeUnixController,
    LmtpHandler,
    make_lmtp_controller,
    make_smtp_controller,
)
from tests.support.mails import DEMO_MAILBOX
from tests.support.services import free_port
from tests.support.stack import Stack


@dataclass
class Intake:
    """A database with the demo dealer, and our SMTP (or LMTP) server on it, no workers."""

    database_url: str
    tmp_path: Path
    limits: IntakeLimits = field(default_factory=IntakeLimits)
    lmtp_listen: str | None = None
    max_bytes: int = 200_000
    settings: dict[str, Any] = field(default_factory=dict)
    tls_context: Any = None

    def __post_init__(self) -> None:
        self.stack = Stack(
            self.database_url,
            relay_url=f"maildir://{self.tmp_path}/outbox",
            worker_threads=None,
            smtp=False,
            **self.settings,
        )
        self.port = 0
        lock_wait = self.stack.settings.sqlite_busy_timeout_ms / 1000
        self.controller: IntakeController | IntakeUnixController
        if self.lmtp_listen:
            self.handler: IntakeHandler = LmtpHandler(
                self.stack.db, limits=self.limits, sqlite_lock_wait=lock_wait
            )
            self.controller = make_lmtp_controller(
                self.handler, listen=self.lmtp_listen, max_bytes=self.max_bytes
            )
        else:
            self.port = free_port()
            self.handler = IntakeHandler(self.stack.db, limits=self.limits, sqlite_lock_wait=lock_wait)
            self.controller = make_smtp_controller(
                self.handler,
                host="127.0.0.1",
                port=self.port,
                max_bytes=self.max_bytes,
                tls_context=self.tls_context,
            )
        self.controller.start()

    def client(self, timeout: float = 30) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=timeout)

    def close(self) -> None:
        self.controller.stop()
        self.stack.close()


def data_replies(port: int, mails: list[bytes], *, to: str = DEMO_MAILBOX) -> list[tuple[int, bytes]]:
    """Send each mail on its own connection, all at once; the reply to each DATA."""
    replies: list[tuple[int, bytes]] = [(0, b"")] * len(mails)
    barrier = threading.Barrier(len(mails))

    def send(index: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.ehlo()
            client.mail("erika@example.org")
            assert client.rcpt(to)[0] == 250
            barrier.wait(timeout=30)  # every DATA at the same moment
            replies[index] = client.data(mails[index])

    run_all([lambda i=i: send(i) for i in range(len(mails))])
    return replies


def run_all(jobs: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def wrap(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
