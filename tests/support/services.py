"""Reach the machine's services; under ``CI`` an unreachable service fails the test."""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import closing

import pytest

PG_ADMIN_DSN = os.environ.get("LMS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("LMS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def reachable(host: str, port: int) -> bool:
    try:
        with closing(socket.create_connection((host, port), timeout=2)):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    if reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: a service test never skips)")
    pytest.skip(message)


def _ephemeral_low() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port *below* the kernel's ephemeral range. A port from bind(0) comes from that
    range, and an outgoing connection (to PostgreSQL, say) may be given the same local port
    before a test binds it, most likely when a test binds it late (a relay that "comes back")."""
    high = min(_ephemeral_low(), 65536) - 1
    for _ in range(200):
        port = random.randint(20000, high)
        with closing(socket.socket()) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def wait_until(predicate: Callable[[], object], *, timeout: float = 20.0, what: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
