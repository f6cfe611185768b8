"""``lms deliver`` (MTA pipe) and ``lms ingest`` (files), through the same store as SMTP.

``lms deliver`` runs as the process an MTA starts (its exit codes are what the MTA reads);
``lms ingest`` runs in the test's process through click's runner, which gives its exit code,
output and errors all the same."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest
from sqlalchemy import select

from models.db import Database
from models.tables import InboundMessage
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import lms, lms_env, lms_here
from tests.support.services import free_port
from tests.support.stack import DEMO_CONFIG


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    environment = lms_env(database_url=sqlite_url)
    migrated = lms_here("migrate", env=environment)
    assert migrated.exit_code == 0, migrated.output
    configured = lms_here("config", "apply", str(DEMO_CONFIG), env=environment)
    assert configured.exit_code == 0, configured.output
    return environment


def stored(url: str) -> list[InboundMessage]:
    db = Database(url)
    with db.session() as session:
        rows = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
    db.dispose()
    return rows


def test_deliver_exit_codes(env: dict[str, str], sqlite_url: str) -> None:
    raw = enquiry()
    ok = lms("deliver", "--recipient", DEMO_MAILBOX, "--sender", "erika@example.org", env=env, input=raw)
    assert ok.returncode == 0, ok.stderr
    unknown = lms("deliver", "--recipient", "nobody@leads.example.com", env=env, input=raw)
    assert unknown.returncode == 67 and b"unknown recipient" in unknown.stderr
    [row] = stored(sqlite_url)
    assert row.raw == raw and row.via == "deliver" and row.envelope_from == "erika@example.org"


def test_deliver_says_75_when_the_database_is_unreachable(tmp_path: Path) -> None:
    down = lms_env(database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    result = lms("deliver", "--recipient", DEMO_MAILBOX, env=down, input=enquiry())
    assert result.returncode == 75  # the MTA keeps the mail and retries
    assert b"Traceback" not in result.stderr


def test_ingest_reads_eml_mbox_and_maildir_and_stores_each_message_once(
    env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(enquiry(subject="from eml"))
    mbox_path = tmp_path / "archive.mbox"
    box = mailbox.mbox(str(mbox_path))
    for n in range(3):
        box.add(enquiry(subject=f"from mbox {n}"))
    box.close()
    maildir = mailbox.Maildir(str(tmp_path / "Maildir"))
    maildir.add(enquiry(subject="from maildir"))

    result = lms_here("ingest", str(eml), str(mbox_path), str(tmp_path / "Maildir"), env=env)
    assert result.exit_code == 0, result.stderr
    assert "stored 5" in result.stdout
    again = lms_here("ingest", str(eml), env=env)
    assert "stored 0, already there 1" in again.stdout
    subjects = sorted(r.raw.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for r in stored(sqlite_url))
    assert subjects == ["from eml", "from maildir", "from mbox 0", "from mbox 1", "from mbox 2"]
    assert {r.via for r in stored(sqlite_url)} == {"ingest"}


def test_ingest_without_a_known_recipient_asks_for_one_and_loses_nothing(
    env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    eml = tmp_path / "elsewhere.eml"
    eml.write_bytes(enquiry(to="info@elsewhere.example"))
    refused = lms_here("ingest", str(eml), env=env)
    assert refused.exit_code == 1 and "pass --recipient" in refused.stderr
    assert stored(sqlite_url) == []
    accepted = lms_here("ingest", "--recipient", DEMO_MAILBOX, str(eml), env=env)
    assert accepted.exit_code == 0 and len(stored(sqlite_url)) == 1
