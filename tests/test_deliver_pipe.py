"""``lms deliver``, the MTA pipe: fast to start (it imports only what storing needs), bounded
in size, and handing the mail to the workers through a real broker when there is one."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.tables import InboundMessage, Lead
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import lms, lms_env, lms_here
from tests.support.services import REDIS_URL, require, wait_until
from tests.support.stack import DEMO_CONFIG, Stack

# What other commands need and a pipe never does: each costs tens of milliseconds or more.
FORBIDDEN = (
    "alembic",
    "jinja2",
    "dramatiq",
    "intake.parsing",
    "mailparser",
    "web",
    "lms.web",
    "sqlalchemy",
    "pydantic",
    "pydantic_settings",
    "workers.runtime",
    "workers.ingest",
    "imapclient",
    "aiosmtpd",
)


def imported_modules(stderr: bytes) -> set[str]:
    modules = set()
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    return modules


def heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        m for m in modules for f in FORBIDDEN if f not in allowed and (m == f or m.startswith(f + "."))
    )


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    environment = lms_env(database_url=sqlite_url)
    migrated = lms_here("migrate", env=environment)
    assert migrated.exit_code == 0, migrated.output
    configured = lms_here("config", "apply", str(DEMO_CONFIG), env=environment)
    assert configured.exit_code == 0, configured.output
    return environment


def test_deliver_imports_only_what_storing_needs(env: dict[str, str]) -> None:
    result = lms(
        "deliver", "--recipient", DEMO_MAILBOX, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, input=enquiry()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    modules = imported_modules(result.stderr)
    assert "intake.store_core" in modules  # the measurement saw the store
    assert heavy(modules) == []


def test_deliver_refuses_a_message_over_the_size_limit_and_stores_nothing(
    env: dict[str, str], sqlite_url: str
) -> None:
    small = {**env, "LMS_SMTP_MAX_BYTES": "5000"}
    result = lms("deliver", "--recipient", DEMO_MAILBOX, env=small, input=enquiry(body="x" * 6000))
    assert result.returncode == 65  # EX_DATAERR: the MTA bounces it
    assert b"too big" in result.stderr
    fits = lms("deliver", "--recipient", DEMO_MAILBOX, env=small, input=enquiry(body="x" * 1000))
    assert fits.returncode == 0
    stack = Stack(sqlite_url, relay_url="maildir:///nonexistent", worker_threads=None, smtp=False)
    try:
        assert stack.count(InboundMessage) == 1
    finally:
        stack.close()


def test_deliver_with_the_in_process_broker_leaves_the_mail_due_for_the_sweeper(
    env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    assert lms("deliver", "--recipient", DEMO_MAILBOX, env=env, input=enquiry()).returncode == 0
    # A process with workers (lms run) finds it at its next sweep, without waiting a grace period.
    stack = Stack(sqlite_url, relay_url=f"maildir://{tmp_path}/outbox", worker_threads=2, smtp=False)
    try:
        result = stack.runtime.sweep_once()
        assert result.inbound == 1
        wait_until(lambda: len(stack.leads()) == 1, what="the lead from the piped mail")
    finally:
        stack.close()


def test_deliver_with_redis_hands_the_mail_to_the_workers_at_once(pg_url: str, tmp_path: Path) -> None:
    require("Redis", "127.0.0.1", 6379)
    stack = Stack(pg_url, relay_url=f"maildir://{tmp_path}/outbox", broker_url=REDIS_URL, worker_threads=2)
    try:
        env = lms_env(database_url=pg_url, broker_url=REDIS_URL, queue_prefix=stack.settings.queue_prefix)
        result = lms(
            "deliver",
            "--recipient",
            DEMO_MAILBOX,
            env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
            input=enquiry(),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert heavy(imported_modules(result.stderr), allowed=("dramatiq",)) == []
        # No sweep here: only the message on the queue can bring the lead this fast.
        wait_until(lambda: stack.count(Lead) == 1, timeout=20, what="the lead via the Redis queue")
    finally:
        stack.close()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"dramatiq:{stack.settings.queue_prefix}*"):
            client.delete(key)
