"""Passwords are stored as Argon2id with RFC 9106's low-memory parameters (64 MiB, 3 passes, 4
lanes). The other tests hash cheaply (tests/conftest.py); this one uses production's hasher."""

from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import select

from models.tables import User
from models.web_tables import WebAccount
from tests.support.stack import Stack
from workers import accounts

PRODUCTION = "$argon2id$v=19$m=65536,t=3,p=4$"


def test_passwords_are_hashed_with_production_parameters_and_weaker_hashes_upgraded(
    production_hashing: None, sqlite_url: str, tmp_path: Path
) -> None:
    stack = Stack(sqlite_url, relay_url=f"maildir://{tmp_path}/o", worker_threads=None, smtp=False)
    try:
        with stack.db.session() as session:
            anna = session.scalars(select(User).where(User.username == "anna")).one()
            accounts.set_password(session, anna, "correct horse battery", now=stack.runtime.clock())
            account = session.get(WebAccount, anna.id)
            assert account is not None and account.password_hash is not None
            assert account.password_hash.startswith(PRODUCTION)
            # A hash with weaker parameters (an older release's) is replaced at the next sign-in.
            account.password_hash = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(
                "correct horse battery"
            )
        with stack.db.session() as session:
            user = accounts.authenticate(
                session,
                "muster",
                "anna",
                "correct horse battery",
                address="127.0.0.1",
                now=stack.runtime.clock(),
            )
            account = session.get(WebAccount, user.id)
            assert account is not None and account.password_hash is not None
            assert account.password_hash.startswith(PRODUCTION)
    finally:
        stack.close()
