"""Engines and sessions that behave the same on SQLite and PostgreSQL.

SQLite needs care to be a safe multi-writer store: WAL so readers never block the writer,
a busy timeout so concurrent writers wait instead of failing, ``BEGIN IMMEDIATE`` for every
write transaction so one that reads and then writes cannot fail at the upgrade with
"database is locked", and ``synchronous=FULL`` so a committed message survives a power loss
(in WAL mode NORMAL may lose the last commits, and we acknowledge mail on commit).

Readers (``db.read()``) begin deferred transactions: in WAL mode they read a consistent
snapshot while one writer writes, and never wait for the write lock nor hold it.

Writers of one process queue for SQLite's write lock on a lock of ours (``db.writing()``,
taken by every write session and by the intake's own commits): SQLite's busy handler polls
with sleeps that grow to 100 ms, so a thread waiting behind a 2 ms commit would often sleep
for tens of milliseconds. Other processes (``lms deliver``) still meet the busy timeout, or
the intake store's quick retries, as they must.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.dbapi import SQLITE_BUSY_TIMEOUT_MS, configure_sqlite, postgres_options
from models.text import safe_parameters

READ_ONLY = "lms_read_only"


def _safe_text_parameters(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool
) -> tuple[str, Any]:
    return statement, safe_parameters(parameters)


def create_db_engine(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    statement_timeout_ms: int = 30_000,
    connect_timeout_seconds: float = 5.0,
    **kwargs: Any,
) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            directory = os.path.dirname(os.path.abspath(database))
            os.makedirs(directory, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": sqlite_busy_timeout_ms / 1000, "check_same_thread": False},
            **kwargs,
        )
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        event.listen(engine, "before_cursor_execute", _safe_text_parameters, retval=True)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault(
        "connect_args",
        {
            "connect_timeout": max(1, round(connect_timeout_seconds)),
            "options": postgres_options(statement_timeout_ms),
        },
    )
    engine = create_engine(url, **kwargs)
    event.listen(engine, "before_cursor_execute", _safe_text_parameters, retval=True)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so our BEGIN IMMEDIATE is the only one.
        configure_sqlite(dbapi_connection, busy_timeout_ms)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        readonly = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


_WRITERS: dict[str, threading.RLock] = {}
_WRITERS_GUARD = threading.Lock()


def _writer_lock(path: str) -> threading.RLock:
    """One per database file in this process (several Database objects may share a file)."""
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(os.path.abspath(path), threading.RLock())


class Database:
    """One engine and its session factory; the unit of work is ``with db.session() as s``."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_db_engine(url, **engine_kwargs)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        reader = self.engine.execution_options(**{READ_ONLY: True})
        if reader.dialect.name == "postgresql":
            reader = reader.execution_options(postgresql_readonly=True)
        self._read_factory = sessionmaker(reader, expire_on_commit=False)
        database = self.engine.url.database or ""
        sqlite_file = is_sqlite(self.engine) and database not in ("", ":memory:")
        self._writer = _writer_lock(database) if sqlite_file else None

    def writing(self) -> AbstractContextManager[Any]:
        """Held around a write transaction: this process's writers take turns (SQLite)."""
        return self._writer if self._writer is not None else nullcontext()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on any exception."""
        with self.writing(), self._factory() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction: never takes the write lock; writing in it fails."""
        with self._read_factory() as session, session.begin():
            yield session

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    @contextmanager
    def dbapi(self) -> Iterator[Any]:
        """A pooled DB-API connection, for the one hot path that skips the ORM (the intake store,
        :mod:`intake.store_core`). The caller controls the transaction; a connection that
        failed is thrown away rather than pooled."""
        raw = self.engine.raw_connection()
        try:
            yield raw
        except BaseException as exc:
            if _is_operational(exc):
                raw.invalidate()
            raise
        finally:
            raw.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _is_operational(exc: BaseException) -> bool:
    return any(cls.__name__ == "OperationalError" for cls in type(exc).__mro__)


def dialect_insert(session: Session, table: Any) -> Any:
    """``INSERT`` with ``on_conflict_do_nothing`` for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
