"""The intake servers of a process: SMTP (one or more acceptor processes on one port) and LMTP.

With ``LMS_SMTP_PROCESSES`` (or ``lms smtp --processes N``) above 1 this process is acceptor 1
and starts N-1 more; all bind the port with ``SO_REUSEPORT`` and the kernel spreads new
connections over them. Each has its own connections, group commit and database pool. The
others have no workers: with the in-process broker they hand mails over through the database
(due at once, for the sweeper of the process with the workers).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

from intake.priority import IntakeFirst
from intake.smtp import (
    IntakeHandler,
    IntakeLimits,
    LmtpHandler,
    make_lmtp_controller,
    make_smtp_controller,
    tls_context_from,
)
from models.settings import Settings, split_host_port
from workers.runtime import Runtime

log = logging.getLogger(__name__)

Stopper = Callable[[], None]


def _handler(
    cls: type[IntakeHandler],
    runtime: Runtime,
    settings: Settings,
    *,
    worker_here: bool,
    acceptor: str | None = None,
    priority: IntakeFirst | None = None,
) -> IntakeHandler:
    enqueue, grace = runtime.intake_handoff(worker_here=worker_here)
    return cls(
        runtime.db,
        enqueue=enqueue,
        clock=runtime.clock,
        grace_seconds=grace.total_seconds(),
        limits=IntakeLimits.from_settings(settings),
        group_max=settings.smtp_group_max,
        group_window_ms=settings.smtp_group_window_ms,
        acceptor=acceptor,
        sqlite_lock_wait=settings.sqlite_busy_timeout_ms / 1000,
        priority=priority,
    )


def start_smtp_acceptor(
    runtime: Runtime,
    settings: Settings,
    *,
    worker_here: bool,
    index: int = 1,
    reuse_port: bool = False,
    priority: IntakeFirst | None = None,
) -> Stopper:
    host, port = split_host_port(settings.smtp_listen)
    tls = None
    if settings.smtp_tls_cert and settings.smtp_tls_key:
        tls = tls_context_from(settings.smtp_tls_cert, settings.smtp_tls_key)
    acceptor = f"{index}/{settings.smtp_processes}" if settings.smtp_processes > 1 else None
    handler = _handler(
        IntakeHandler, runtime, settings, worker_here=worker_here, acceptor=acceptor, priority=priority
    )
    controller = make_smtp_controller(
        handler,
        host=host,
        port=port,
        max_bytes=settings.smtp_max_bytes,
        tls_context=tls,
        reuse_port=reuse_port,
    )
    controller.start()
    log.info(
        "SMTP intake listening on %s:%d%s%s",
        host,
        port,
        " with STARTTLS" if tls else "",
        f" (acceptor {acceptor})" if acceptor else "",
    )
    return controller.stop


def start_smtp(
    runtime: Runtime, settings: Settings, *, worker_here: bool, priority: IntakeFirst | None = None
) -> list[Stopper]:
    count = settings.smtp_processes
    stoppers = [
        start_smtp_acceptor(
            runtime, settings, worker_here=worker_here, reuse_port=count > 1, priority=priority
        )
    ]
    if count > 1:
        supervisor = AcceptorProcesses(settings, range(2, count + 1))
        supervisor.start()
        stoppers.append(supervisor.stop)
    return stoppers


def start_lmtp(runtime: Runtime, settings: Settings, *, worker_here: bool) -> Stopper:
    assert settings.lmtp_listen
    handler = _handler(LmtpHandler, runtime, settings, worker_here=worker_here)
    controller = make_lmtp_controller(handler, listen=settings.lmtp_listen, max_bytes=settings.smtp_max_bytes)
    controller.start()
    log.info("LMTP intake listening on %s", settings.lmtp_listen)
    return controller.stop


def run_acceptor_process(settings_values: dict[str, Any], index: int) -> None:
    """Body of an extra acceptor process (started with the spawn method)."""
    from lms.logs import setup_logging
    from lms.metrics_process import start_metrics, stop_metrics
    from lms.processes import wait_for_stop_signal
    from workers.runtime import build_runtime

    settings = Settings(**settings_values)
    setup_logging(settings.log_format)
    start_metrics(settings)  # joins the parent's directory (which the parent emptied)
    runtime = build_runtime(settings)
    stop = start_smtp_acceptor(runtime, settings, worker_here=False, index=index, reuse_port=True)
    try:
        wait_for_stop_signal()
    finally:
        stop()
        runtime.close()
        stop_metrics()  # a spawned process ends with os._exit: no atexit


class AcceptorProcesses:
    """The extra acceptors: started, restarted when one dies, stopped with SIGTERM."""

    def __init__(self, settings: Settings, indexes: range) -> None:
        self.values = settings.model_dump()
        self.indexes = list(indexes)
        self.context = multiprocessing.get_context("spawn")
        self.processes: dict[int, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lms-acceptors", daemon=True)

    def _spawn(self, index: int) -> None:
        process = self.context.Process(
            target=run_acceptor_process, args=(self.values, index), name=f"lms-smtp-{index}", daemon=False
        )
        process.start()
        self.processes[index] = process

    def start(self) -> None:
        for index in self.indexes:
            self._spawn(index)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for index, process in list(self.processes.items()):
                if not process.is_alive() and not self._stop.is_set():
                    log.error("SMTP acceptor %d exited with %s; starting it again", index, process.exitcode)
                    self._spawn(index)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for process in self.processes.values():
            if process.is_alive():
                process.terminate()
        for process in self.processes.values():
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join()
