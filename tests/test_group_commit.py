"""Group commit: mails arriving together share one commit, and a failed commit fails (451)
every mail in it and loses none."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from models.tables import InboundMessage
from tests.support.intake import Intake, data_replies
from tests.support.mails import enquiry


@pytest.fixture
def intake(db_url: str, tmp_path: Path) -> Iterator[Intake]:
    server = Intake(
        db_url,
        tmp_path,
        # A held lock makes a commit fail after about a second, on either database.
        settings={"sqlite_busy_timeout_ms": 1000, "database_statement_timeout_seconds": 1.0},
    )
    yield server
    server.close()


def stored_shas(intake: Intake) -> list[str]:
    with intake.stack.db.session() as session:
        return list(session.scalars(select(InboundMessage.sha256)))


def test_concurrent_mails_share_commits_and_each_is_stored_once(intake: Intake) -> None:
    mails = [enquiry(subject=f"Anfrage {n}") for n in range(12)]
    replies = data_replies(intake.port, mails)
    assert [code for code, _ in replies] == [250] * 12
    assert len(stored_shas(intake)) == 12
    # Fewer commits than mails: some commit carried several of them.
    assert intake.handler.committer.commits < 12
    ids = {text.split(b"stored as ")[1] for _, text in replies}
    assert len(ids) == 12  # every client was told its own row


def test_a_failed_group_commit_gives_451_to_every_mail_in_it_and_loses_none(
    intake: Intake, db_url: str
) -> None:
    mails = [enquiry(subject=f"Anfrage {n}") for n in range(8)]
    release = hold_write_lock(db_url)
    try:
        replies = data_replies(intake.port, mails)
    finally:
        release()
    assert [(code, text[:5]) for code, text in replies] == [(451, b"4.3.0")] * 8
    assert stored_shas(intake) == []
    committer = intake.handler.committer
    assert committer.batches < 8  # they failed together, not one by one
    assert committer.commits == 0

    # The senders retry after the lock is gone: everything arrives, nothing twice.
    again = data_replies(intake.port, mails)
    assert [code for code, _ in again] == [250] * 8
    with intake.stack.db.session() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 8
    assert len(set(stored_shas(intake))) == 8


def hold_write_lock(db_url: str) -> object:
    """Another client holds the write lock on inbound mail; returns the release."""
    if db_url.startswith("sqlite"):
        blocker = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")

        def release_sqlite() -> None:
            blocker.execute("ROLLBACK")
            blocker.close()

        return release_sqlite
    connection = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
    connection.execute("LOCK TABLE inbound_messages IN EXCLUSIVE MODE")

    def release_postgres() -> None:
        connection.rollback()
        connection.close()

    return release_postgres
