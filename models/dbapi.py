"""Plain DB-API connections with the same settings as the engines of :mod:`models.db`.

No SQLAlchemy here: ``lms deliver`` is started by the mail server once per message and stores
through these, and importing SQLAlchemy alone costs more than a whole delivery should. The
SQLite settings live here once and :mod:`models.db` applies the same function to its engines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SQLITE_BUSY_TIMEOUT_MS = 15_000


def configure_sqlite(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    """WAL so readers never block the writer, a busy timeout so writers wait instead of
    failing, ``synchronous=FULL`` so a committed (and acknowledged) mail survives a power loss;
    autocommit mode, so that our own ``BEGIN IMMEDIATE`` is the only transaction control."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def postgres_options(statement_timeout_ms: int) -> str:
    """Server-side bounds for every statement, lock waits included, so a held lock gives an
    error (and SMTP a 451) within the client's patience. 0 means no bound."""
    return f"-c statement_timeout={int(statement_timeout_ms)}"


@dataclass(frozen=True)
class Target:
    backend: str  # "sqlite" | "postgresql"
    sqlite_path: str = ""
    pg_params: dict[str, str] = field(default_factory=dict)


def parse_url(url: str) -> Target:
    """The parts of a SQLAlchemy URL (``sqlite:///var/lms.db``,
    ``postgresql+psycopg://user:pw@host:5432/db``) a DB-API connect needs."""
    parts = urlsplit(url)
    backend = parts.scheme.split("+", 1)[0].lower()
    if backend == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy reads them.
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return Target("sqlite", sqlite_path=unquote(path) or ":memory:")
    if backend in ("postgresql", "postgres"):
        params: dict[str, str] = {}
        if parts.hostname:
            params["host"] = unquote(parts.hostname)
        if parts.port:
            params["port"] = str(parts.port)
        if parts.username:
            params["user"] = unquote(parts.username)
        if parts.password:
            params["password"] = unquote(parts.password)
        if parts.path.strip("/"):
            params["dbname"] = unquote(parts.path.strip("/"))
        params.update(parse_qsl(parts.query))
        return Target("postgresql", pg_params=params)
    raise ValueError(f"unsupported database URL scheme {parts.scheme!r}")


def connect(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    statement_timeout_ms: int = 30_000,
    connect_timeout_seconds: float = 5.0,
) -> Any:
    """A DB-API connection: ``sqlite3`` in autocommit mode (callers ``BEGIN IMMEDIATE``), or
    ``psycopg`` with implicit transactions."""
    target = parse_url(url)
    if target.backend == "sqlite":
        import sqlite3

        if target.sqlite_path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(target.sqlite_path)), exist_ok=True)
        connection = sqlite3.connect(
            target.sqlite_path, timeout=sqlite_busy_timeout_ms / 1000, check_same_thread=False
        )
        configure_sqlite(connection, sqlite_busy_timeout_ms)
        return connection
    import psycopg

    params: dict[str, Any] = dict(target.pg_params)
    params.setdefault("connect_timeout", str(max(1, round(connect_timeout_seconds))))
    params.setdefault("options", postgres_options(statement_timeout_ms))
    return psycopg.connect(**params)
