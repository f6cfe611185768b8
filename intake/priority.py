"""Intake first: work that shares a process with the SMTP intake (the ingest workers of
`lms run`) waits while mails wait for their commit.

Accepting mail is what senders wait for; turning it into leads can trail a burst by seconds.
In one process the two share the GIL, and on SQLite the one write lock, which an ingest holds
while it parses. So an ingest starts only when no mail is waiting for its commit and none was
committed in the last ``quiet`` seconds (a sender with more mail sends its next one at once),
or after ``max_wait`` seconds, so that a never-ending stream still gets processed; and at
most ``slots`` ingests run at once.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType


class IntakeFirst:
    def __init__(self, *, slots: int = 1, max_wait: float = 0.1, quiet: float = 0.01) -> None:
        self.slots = slots
        self.max_wait = max_wait
        self.quiet = quiet
        self._last_done = 0.0
        self._condition = threading.Condition()
        self._waiting_mails = 0
        self._running = 0

    # -- the intake's side (its event loop) -----------------------------------------------------
    def mail_waiting(self) -> None:
        with self._condition:
            self._waiting_mails += 1

    def mail_done(self) -> None:
        with self._condition:
            self._waiting_mails -= 1
            self._last_done = time.monotonic()

    # -- the workers' side: ``with gate: ingest(...)`` -----------------------------------------
    def __enter__(self) -> IntakeFirst:
        deadline = time.monotonic() + self.max_wait
        with self._condition:
            while True:
                now = time.monotonic()
                if self._running >= self.slots:
                    self._condition.wait()
                    continue
                busy = self._waiting_mails > 0 or now - self._last_done < self.quiet
                if not busy or now >= deadline:
                    break
                self._condition.wait(min(self.quiet, deadline - now))
            self._running += 1
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        with self._condition:
            self._running -= 1
            self._condition.notify_all()
