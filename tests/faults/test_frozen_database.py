"""A frozen database (SIGSTOP on a private PostgreSQL: it accepts connections and answers
nothing) gives 451 and exit 75 within a bounded time instead of hanging the sender, and
nothing is lost after it thaws."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.smtp import IntakeLimits
from models.tables import InboundMessage
from tests.support.intake import Intake, run_all
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.private_postgres import PrivatePostgres
from tests.support.processes import lms, lms_env

DEADLINE = 2.0


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.stop()


def test_a_frozen_postgres_gives_451_in_bounded_time_and_loses_nothing(
    postgres: PrivatePostgres, tmp_path: Path
) -> None:
    intake = Intake(
        postgres.url,
        tmp_path,
        limits=IntakeLimits(store_timeout_seconds=DEADLINE),
        settings={"database_statement_timeout_seconds": 1.0, "database_connect_timeout_seconds": 2.0},
    )
    try:
        first = enquiry(subject="before")
        with intake.client() as client:
            assert client.sendmail("erika@example.org", [DEMO_MAILBOX], first) == {}

        held = [enquiry(subject=f"while frozen {n}") for n in range(3)]
        replies: list[tuple[int, bytes, float]] = []
        postgres.freeze()
        try:

            def send(raw: bytes) -> None:
                with intake.client(timeout=60) as client:
                    client.ehlo()
                    client.mail("erika@example.org")
                    assert client.rcpt(DEMO_MAILBOX)[0] == 250
                    started = time.monotonic()
                    code, text = client.data(raw)
                    replies.append((code, text, time.monotonic() - started))

            run_all([lambda raw=raw: send(raw) for raw in held])
            piped = lms(
                "deliver",
                "--recipient",
                DEMO_MAILBOX,
                env=lms_env(
                    database_url=postgres.url,
                    store_timeout_seconds=str(DEADLINE),
                    database_connect_timeout_seconds="2",
                ),
                input=enquiry(subject="piped while frozen"),
                timeout=30,
            )
        finally:
            postgres.thaw()

        assert [(code, text[:5]) for code, text, _ in replies] == [(451, b"4.3.0")] * 3
        assert max(seconds for _, _, seconds in replies) < DEADLINE + 3
        assert piped.returncode == 75, piped.stderr

        # After the thaw the senders retry: every mail is there once.
        for raw in held:
            with intake.client() as client:
                assert client.sendmail("erika@example.org", [DEMO_MAILBOX], raw) == {}
        with intake.stack.db.session() as session:
            assert session.scalar(select(func.count()).select_from(InboundMessage)) == 4
    finally:
        intake.close()
