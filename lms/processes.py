"""The long-running components, alone or all together, with a graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from intake.imap import ImapPoller, accounts_from, run_pollers
from intake.priority import IntakeFirst
from lms.acceptors import start_lmtp, start_smtp
from lms.metrics_process import start_metrics, start_metrics_listener
from models.config_apply import apply_config
from models.settings import Settings, split_host_port
from models.tables import Dealer
from workers.config_checks import load_checked
from workers.runtime import Runtime, Scheduler, build_runtime

log = logging.getLogger(__name__)


def wait_for_stop_signal() -> None:
    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        log.info("signal %s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    while not stop.wait(1.0):
        pass


def share_the_interpreter_with_the_intake(runtime: Runtime) -> IntakeFirst:
    """With the workers in the same process, the intake's event loop waits for the GIL at
    every step of every session while workers parse mails (by default up to 5 ms each time,
    several times per mail), and on SQLite for the write lock an ingest holds while it parses.
    Hand the GIL over more often, and let ingests wait for the intake (intake.priority);
    sending, which waits on the network, keeps all worker threads."""
    import sys

    sys.setswitchinterval(0.0005)
    priority = IntakeFirst(slots=1)
    runtime.ingest_gate = priority
    return priority


def apply_config_at_start(runtime: Runtime, settings: Settings) -> None:
    path = settings.config or ("lms.toml" if Path("lms.toml").exists() else None)
    if not path:
        return
    config = load_checked(path)
    with runtime.db.session() as session:
        applied = apply_config(session, config, now=runtime.clock())
    log.info("configuration %s applied (dealers: %s)", path, ", ".join(applied) or "none")


def start_imap(runtime: Runtime, *, worker_here: bool) -> list[ImapPoller]:
    with runtime.db.session() as session:
        dealers = list(session.scalars(select(Dealer)))
    accounts = accounts_from(dealers)
    enqueue, grace = runtime.intake_handoff(worker_here=worker_here)
    pollers = run_pollers(
        accounts,
        lambda account: ImapPoller(
            account,
            runtime.db,
            enqueue=enqueue,
            clock=runtime.clock,
            grace_seconds=grace.total_seconds(),
            max_bytes=runtime.settings.smtp_max_bytes,
            secret_key=runtime.settings.secret_key,
        ),
    )
    for account in accounts:
        log.info("IMAP poller started for %s (%s)", account.key, account.folder)
    return pollers


def start_web(runtime: Runtime, settings: Settings, *, worker_here: bool) -> Callable[[], None]:
    """The Leads pane under uvicorn in a thread; returns its stop function."""
    from web.context import WebContext
    from web.server import WebServer

    host, port = split_host_port(settings.web_listen)
    enqueue = runtime.enqueue_send if worker_here or not settings.broker_url.startswith("memory") else None
    ctx = WebContext.from_settings(settings, runtime.db, clock=runtime.clock, enqueue_send=enqueue)
    server = WebServer(ctx, host, port).start()
    log.info("web pane listening on http://%s:%d", host, server.port)
    return server.stop


def run_components(
    settings: Settings,
    *,
    smtp: bool,
    worker: bool,
    scheduler: bool,
    imap: bool = False,
    web: bool = False,
    lmtp: bool = False,
    wait: Callable[[], None] = wait_for_stop_signal,
) -> None:
    start_metrics(settings)  # before any figure: empties LMS_METRICS_DIR if we are the first
    runtime = build_runtime(settings)
    apply_config_at_start(runtime, settings)
    priority = None
    if smtp and worker:
        priority = share_the_interpreter_with_the_intake(runtime)
    stoppers: list[Callable[[], None]] = []
    try:
        if (stop_listener := start_metrics_listener(settings, runtime.db, runtime.clock)) is not None:
            stoppers.append(stop_listener)
        if worker:
            dramatiq_worker = runtime.start_worker()
            stoppers.append(lambda: dramatiq_worker.stop(timeout=10_000))
            log.info(
                "workers started (%d threads, broker %s)",
                settings.worker_threads,
                settings.broker_url.split("@")[-1],
            )
        if scheduler:
            timed = Scheduler(runtime, settings.sweep_interval_seconds)
            timed.start()
            stoppers.append(timed.stop)
            log.info(
                "scheduler started (sweeps every %.0fs, escalations when due)",
                settings.sweep_interval_seconds,
            )
        if web:
            stoppers.append(start_web(runtime, settings, worker_here=worker))
        if imap:
            for poller in start_imap(runtime, worker_here=worker):
                stoppers.append(poller.stop)
        if smtp:
            stoppers.extend(start_smtp(runtime, settings, worker_here=worker, priority=priority))
        if lmtp and settings.lmtp_listen:
            stoppers.append(start_lmtp(runtime, settings, worker_here=worker))
        wait()
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception:
                log.exception("error while stopping")
        runtime.close()
        log.info("stopped")
