from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from argon2 import PasswordHasher

from tests.support.dovecot import Dovecot
from tests.support.oauth_server import OAuthServer
from tests.support.services import PG_ADMIN_DSN, REDIS_URL, free_port, require, unique
from tests.support.sink import SmtpSink
from workers import accounts

# Argon2id with argon2-cffi's RFC 9106 defaults (64 MiB, 3 passes, 4 lanes) costs ~0.2 s a
# hash on this machine's 2 cores, and the web tests hash seven passwords per stack and verify
# one per sign-in. In this process (not in ``lms`` subprocesses) tests hash with the cheapest
# Argon2id instead: the same code paths, the same answers. tests/test_password_hashing.py
# checks the production parameters with the real hasher.
PRODUCTION_HASHER = accounts._hasher
PRODUCTION_DUMMY_HASH = accounts._DUMMY_HASH
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "_hasher", _CHEAP_HASHER)
        patch.setattr(accounts, "_DUMMY_HASH", _CHEAP_HASHER.hash("not a password of anyone"))
        yield


@pytest.fixture
def production_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hasher production uses, for the test of its parameters."""
    monkeypatch.setattr(accounts, "_hasher", PRODUCTION_HASHER)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", PRODUCTION_DUMMY_HASH)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/lms.db"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards."""
    require("PostgreSQL", "127.0.0.1", 5432)
    name = unique("lms_test")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on both databases we support."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """Queues of our own on the machine's Redis, deleted afterwards."""
    require("Redis", "127.0.0.1", 6379)
    name = unique("lmsq")
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"dramatiq:{name}*"):
        client.delete(key)


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    """An OAuth2 authorization server of the test's own (Microsoft's and Google's stand-in)."""
    server = OAuthServer().start()
    yield server
    server.stop()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A private Dovecot on loopback for this test (installed from Debian's packages if missing)."""
    server = Dovecot().start()
    yield server
    server.cleanup()
