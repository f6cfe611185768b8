"""Row ids handed to the workers within a few milliseconds travel as one broker message.

Under light load a message carries one id and waits at most ``window`` seconds; under heavy
load it carries many, and the stage behind it (ingest, send) then handles them in one
transaction each instead of one per id: the commits, and on SQLite their fsyncs, are shared
(group commit for the pipeline). Nothing is lost if the process dies with ids still here:
their rows are stored, and the sweeper finds them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Coalescer:
    def __init__(
        self, send: Callable[[list[int]], object], *, window: float = 0.005, limit: int = 64
    ) -> None:
        self._send = send
        self._window = window
        self._limit = limit
        self._ids: list[int] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lms-coalesce", daemon=True)
        self._thread.start()

    def add(self, ids: int | list[int]) -> None:
        with self._cond:
            self._ids.extend([ids] if isinstance(ids, int) else ids)
            self._cond.notify()

    def _take(self) -> list[int]:
        with self._cond:
            while not self._ids and not self._closed:
                self._cond.wait()
            if self._ids and len(self._ids) < self._limit and not self._closed:
                # A short window for the ids arriving right behind the first.
                self._cond.wait_for(lambda: len(self._ids) >= self._limit or self._closed, self._window)
            taken, self._ids = self._ids[: self._limit], self._ids[self._limit :]
            return taken

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                try:
                    self._send(batch)
                except Exception:  # a broker that fails loses nothing: the sweeper has the rows
                    log.warning("could not enqueue %s; the sweeper will", batch, exc_info=True)
            elif self._closed:
                return

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)
