"""Sessions: readers never take the write lock; writers do, and wait for it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from models.db import Database
from models.migrate import upgrade
from models.tables import Dealer


def test_on_sqlite_a_reader_reads_while_a_writer_holds_the_lock_and_a_writer_waits(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/lms.db", sqlite_busy_timeout_ms=300)
    upgrade(db)
    holder = sqlite3.connect(tmp_path / "lms.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write transaction
    holder.execute(
        "INSERT INTO dealers (id, name, from_name, from_address, timezone, language, country, "
        "forward_to, config, updated_at) VALUES ('x', 'X', 'X', 'x@x.example', 'UTC', 'de', 'DE', "
        "'[]', '{}', '2026-11-30')"
    )
    try:
        started = time.monotonic()
        with db.read() as session:
            assert session.scalars(select(Dealer.id)).all() == []  # the committed state, at once
        assert time.monotonic() - started < 0.25
        with pytest.raises(OperationalError, match="locked"), db.session() as session:
            session.execute(text("SELECT 1"))  # BEGIN IMMEDIATE waits for the lock, then gives up
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.dispose()


def test_on_postgresql_a_read_session_refuses_to_write(pg_url: str) -> None:
    db = Database(pg_url)
    upgrade(db)
    try:
        with pytest.raises(Exception, match="read-only"), db.read() as session:
            session.execute(text("UPDATE dealers SET name = 'x'"))
    finally:
        db.dispose()
