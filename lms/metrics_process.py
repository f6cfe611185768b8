"""A long-running process's part in the metrics: its multiprocess directory, and
``LMS_METRICS_LISTEN``.

Every process of one installation on one machine writes its figures into ``LMS_METRICS_DIR``
(prometheus_client's multiprocess mode, one file per process and kind). The directory must be
emptied when the installation starts, never while another of its processes runs: each process
holds a shared lock on ``DIR/.lock`` for its lifetime, and only a process that gets the lock
exclusively (no other process of the installation alive: ``lms run``, the first of separately
started components, and not the acceptor processes ``lms smtp --processes N`` spawns) empties
it. An empty ``LMS_METRICS_DIR`` turns metrics off. Do not share the directory between
containers: prometheus_client names its files by process id, and every container has a pid 1.

``LMS_METRICS_LISTEN`` (loopback or a private network: no token) serves ``/metrics`` in a
thread. Several components on one machine may be given the same address: the first binds it
and serves the shared directory, the others log that and go on.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from models import metrics
from models.db import Database
from models.settings import Settings, split_host_port

log = logging.getLogger(__name__)

_held: list[IO[bytes]] = []  # this process's lock on its directory, open while it lives


def metrics_directory(settings: Settings) -> str | None:
    return str(Path(settings.metrics_dir).resolve()) if settings.metrics_dir else None


def start_metrics(settings: Settings) -> None:
    """Before any figure is written: take part in the directory (emptied if we are the first)."""
    directory = metrics_directory(settings)
    if directory is None or _held:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    lock = open(path / ".lock", "ab")  # noqa: SIM115 - held for the process's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        removed = 0
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("metrics: emptied %s (%d files of an earlier run)", directory, removed)
    except BlockingIOError:
        pass  # another process of the installation runs: its files stay
    fcntl.flock(lock, fcntl.LOCK_SH)
    _held.append(lock)
    metrics.enable(directory)
    atexit.register(stop_metrics)


def stop_metrics() -> None:
    """On exit: live gauges of this process are dropped (counters stay, as the library wants)."""
    from prometheus_client import multiprocess

    if not metrics.enabled():
        return
    metrics.disable()
    multiprocess.mark_process_dead(os.getpid(), os.environ["PROMETHEUS_MULTIPROC_DIR"])


class MetricsServer:
    """``/metrics`` without a token, for loopback or a private network."""

    def __init__(self, render: Callable[[], bytes], host: str, port: int) -> None:
        content_type = _content_type()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                try:
                    body = render()
                except Exception:
                    log.exception("metrics: a scrape failed")
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a scrape every 15 s is no news

        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        self.server = server_class((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="lms-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _content_type() -> str:
    from workers.metrics_export import CONTENT_TYPE

    return CONTENT_TYPE


def start_metrics_listener(
    settings: Settings, db: Database, clock: Callable[[], datetime]
) -> Callable[[], None] | None:
    """The ``LMS_METRICS_LISTEN`` server, or None (unset, or another component has the port)."""
    if not settings.metrics_listen:
        return None
    from workers.metrics_export import exposition

    directory = metrics_directory(settings)
    host, port = split_host_port(settings.metrics_listen)
    try:
        server = MetricsServer(lambda: exposition(db, clock, directory=directory), host, port).start()
    except OSError as exc:
        log.warning(
            "metrics: %s not served here (%s); another component may serve it", settings.metrics_listen, exc
        )
        return None
    log.info("metrics on http://%s:%d/metrics", host, server.port)
    return server.stop
