"""Group commit for the asyncio intakes: mails whose DATA ends at about the same time share
one durable commit.

One commit (an fsync on SQLite, a WAL flush on PostgreSQL) costs about as much for fifty
mails as for one. Sessions hand their mail to :meth:`GroupCommitter.submit` and wait; one
commit at a time runs in a thread, taking everything that queued up meanwhile (at most
``max_batch``). A session gets its result only after the commit that holds its mail, so a
250 still means "on disk"; a failed commit fails every mail in it and none is acknowledged.

When nothing is in flight the first mail starts a commit at once, unless other sessions could
still add theirs (``others()``: connected sessions not already waiting for a commit): then it
waits up to ``window`` seconds for them. One sender alone never waits. A session that
gave up waiting (its deadline passed and the sender got 451) is dropped from the queue if its
commit has not started; if it has, the mail may still land, and the sender's retry finds
the same bytes stored (the store deduplicates by content).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class GroupCommitter(Generic[Item]):
    def __init__(
        self,
        commit: Callable[[list[Item]], Sequence[Any]],
        *,
        max_batch: int = 64,
        window: float = 0.001,
        others: Callable[[], int] = lambda: 0,
        after_commit: Callable[[Sequence[Any]], None] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        """``commit(items)`` runs in a thread and returns one result per item (an exception
        instance fails that item alone) or raises (every item fails). ``others()``: how many
        sessions might still hand in a mail. ``after_commit(results)`` runs in a
        thread after the waiters were answered (announcing the rows to the workers)."""
        self.commit = commit
        self.max_batch = max_batch
        self.window = window
        self.others = others
        self.after_commit = after_commit
        # One commit at a time, on its own thread: a thread pool exhausted by stuck look-ups
        # must not keep the commit from running.
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="lms-commit")
        self._queue: list[tuple[Item, asyncio.Future[Any]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # commits tried
        self.commits = 0  # commits that succeeded
        self.committed = 0  # mails in them

    async def submit(self, item: Item) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((item, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.window > 0 and len(self._queue) < self.max_batch and self.others() > 0:
                    deadline = time.monotonic() + self.window
                    while (
                        len(self._queue) < self.max_batch
                        and self.others() > 0
                        and time.monotonic() < deadline
                    ):
                        await asyncio.sleep(0)  # let the other sessions' reads run
                        if self.others() > 0:
                            await asyncio.sleep(self.window / 8)
                taken, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                batch = [(item, future) for item, future in taken if not future.done()]
                if not batch:
                    continue
                items = [item for item, _ in batch]
                self.batches += 1
                try:
                    results = await loop.run_in_executor(self.executor, self.commit, items)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.commits += 1
                self.committed += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                if self.after_commit is not None:
                    loop.run_in_executor(None, self.after_commit, results)
        finally:
            self._running = False
