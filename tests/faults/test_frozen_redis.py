"""A frozen broker (SIGSTOP on a private Redis): the intake still answers every sender within
seconds (the mail is stored; the broker only carries its id), handing the id over fails after a
bounded wait, and once Redis thaws the sweeper and the workers make every mail its lead and
its answer. Nothing lost, nothing twice."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.private_redis import PrivateRedis
from tests.support.processes import LmsProcess, lms_env, lms_here
from tests.support.services import free_port, reachable, wait_until

MAILS = 6


@pytest.fixture
def frozen_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.stop()


def answers(outbox: Path) -> list[bytes]:
    new = outbox / "new"
    files = [p.read_bytes() for p in new.iterdir()] if new.exists() else []
    return [f for f in files if b"Auto-Submitted: auto-replied" in f]


def test_a_frozen_redis_costs_time_not_mail(frozen_redis: PrivateRedis, tmp_path: Path) -> None:
    smtp_port = free_port()
    env = lms_env(
        database_url=f"sqlite:///{tmp_path}/lms.db",
        # Waits on the broker bounded at 2 s here (10 s by default), so the outage below outlasts
        # them: handing over fails, and the sweeper must find the stored rows.
        broker_url=frozen_redis.url + "?socket_timeout=2&socket_connect_timeout=2",
        relay_url=f"maildir://{tmp_path}/outbox",
        smtp_listen=f"127.0.0.1:{smtp_port}",
        config=str(Path(__file__).parents[1] / "fixtures" / "dealer_always_open.toml"),
        sweep_grace_seconds="2",
        sweep_interval_seconds="1",
    )
    assert lms_here("migrate", env=env).exit_code == 0
    processes = [
        LmsProcess(name, env=env, log=tmp_path / f"{name}.log") for name in ("smtp", "worker", "scheduler")
    ]
    try:
        wait_until(lambda: reachable("127.0.0.1", smtp_port), what="lms smtp listening")
        frozen_redis.freeze()
        replies = []
        for n in range(MAILS):
            started = time.monotonic()
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
                refused = client.sendmail(
                    f"kunde{n}@example.org",
                    [DEMO_MAILBOX],
                    enquiry(sender=f"kunde{n}@example.org", message_id=f"<frozen-{n}@example.org>"),
                )
            replies.append((refused, time.monotonic() - started))
        assert [r for r, _ in replies] == [{}] * MAILS  # every mail acknowledged: it is stored
        assert max(t for _, t in replies) < 5  # and the sender did not wait for the broker
        time.sleep(5)  # the outage itself, longer than the broker's bounded waits
        assert answers(tmp_path / "outbox") == []  # nothing moves without the broker
        frozen_redis.thaw()
        wait_until(
            lambda: len(answers(tmp_path / "outbox")) == MAILS, timeout=90, what="every answer after the thaw"
        )
    finally:
        frozen_redis.thaw()
        for process in processes:
            process.stop()
    assert sorted(
        a.split(b"In-Reply-To: ")[1].split(b"\r\n")[0] for a in answers(tmp_path / "outbox")
    ) == sorted(f"<frozen-{n}@example.org>".encode() for n in range(MAILS))
