"""IMAP intake against a real Dovecot on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake.imap import OUR_KEYWORD, ImapPoller, accounts_from
from lms.cli import main
from models.tables import Dealer, ImapLedger, InboundMessage
from tests.support.dovecot import Dovecot
from tests.support.mails import enquiry
from tests.support.processes import LmsProcess, lms_env
from tests.support.services import wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import Stack, demo_config_with

KEYWORD = OUR_KEYWORD.encode()


def config_with_imap(tmp_path: Path, dovecot: Dovecot, **imap: str) -> Path:
    return demo_config_with(tmp_path, dovecot.imap_toml(**imap))


def poller_for(stack: Stack) -> ImapPoller:
    with stack.db.session() as session:
        [account] = accounts_from(list(session.scalars(select(Dealer))))
    return ImapPoller(
        account, stack.db, enqueue=stack.runtime.enqueue_ingest, clock=stack.runtime.clock, backoff_max=1.0
    )


def stored(stack: Stack) -> list[InboundMessage]:
    return [row for row in stack.inbound() if row.via == "imap"]


@pytest.fixture
def setup(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot, sink: SmtpSink
) -> Iterator[tuple[Stack, Dovecot]]:
    stack = Stack(sqlite_url, relay_url=sink.url, smtp=False, config=config_with_imap(tmp_path, dovecot))
    yield stack, dovecot
    stack.close()


def test_mail_arriving_during_idle_becomes_a_lead_with_an_answer_within_seconds(
    setup: tuple[Stack, Dovecot], sink: SmtpSink
) -> None:
    stack, dovecot = setup
    poller = poller_for(stack)
    poller.start()
    try:
        wait_until(poller.idling.is_set, what="the poller idling")
        assert stack.count(InboundMessage) == 0
        dovecot.append(enquiry(sender="Erika <erika@example.org>", subject="Probefahrt"))
        wait_until(
            lambda: sink.to("erika@example.org"), timeout=10, what="the answer to a mail taken in IDLE"
        )
        [lead] = stack.leads()
        assert lead.type == "test_drive"
        wait_until(lambda: all(KEYWORD in flags for flags in dovecot.folder().values()), what="the flag")
        assert all(b"\\Seen" in flags for flags in dovecot.folder().values())
    finally:
        poller.stop()
    status = json.loads(
        CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
        .invoke(main, ["ops", "status", "--json"])
        .stdout
    )["imap"]
    assert status[0]["taken"] == 1 and status[0]["mailbox"].endswith(f"leads@127.0.0.1:{dovecot.port}")
    assert status[0]["last_success"] is not None


def test_mails_another_client_already_read_are_taken(setup: tuple[Stack, Dovecot]) -> None:
    stack, dovecot = setup
    dovecot.append(enquiry(subject="schon gelesen 1"), seen=True)
    dovecot.append(enquiry(subject="schon gelesen 2"), seen=True)
    poller = poller_for(stack)
    poller.start()
    try:
        wait_until(lambda: len(stored(stack)) == 2, what="both read mails")
    finally:
        poller.stop()


def test_a_server_restart_in_the_middle_of_a_connection_loses_and_doubles_nothing(
    setup: tuple[Stack, Dovecot],
) -> None:
    stack, dovecot = setup
    poller = poller_for(stack)
    poller.start()
    try:
        # Mail delivered while the poller idles: Dovecot does not announce one delivered in the
        # milliseconds between the poller's SEARCH and its IDLE until the next change.
        wait_until(poller.idling.is_set, what="the poller idling")
        dovecot.append(enquiry(subject="vor dem Neustart"))
        wait_until(lambda: len(stored(stack)) == 1, what="the first mail")
        dovecot.stop()  # the server goes away under the idling poller
        wait_until(
            lambda: json.loads(
                CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
                .invoke(main, ["ops", "status", "--json"])
                .stdout  # the poller thread may log to stderr meanwhile
            )["imap"][0]["last_error"],
            what="the poller noticing",
        )
        dovecot.start()
        wait_until(poller.idling.is_set, timeout=30, what="the poller idling again")
        dovecot.append(enquiry(subject="nach dem Neustart"))
        wait_until(lambda: len(stored(stack)) == 2, timeout=30, what="the mail after the restart")
        wait_until(lambda: all(KEYWORD in f for f in dovecot.folder().values()), what="both flagged")
    finally:
        poller.stop()
    assert sorted(r.raw.split(b"Subject: ")[1].split(b"\r\n")[0] for r in stored(stack)) == [
        b"nach dem Neustart",
        b"vor dem Neustart",
    ]


def test_a_recreated_folder_with_a_new_uidvalidity_stores_nothing_twice(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot, sink: SmtpSink
) -> None:
    stack = Stack(
        sqlite_url, relay_url=sink.url, smtp=False, config=config_with_imap(tmp_path, dovecot, folder="Leads")
    )
    first, second = enquiry(subject="eins"), enquiry(subject="zwei")
    try:
        for raw in (first, second):
            dovecot.append(raw, folder="Leads")
        poller = poller_for(stack)
        poller.start()
        wait_until(lambda: len(stored(stack)) == 2, what="two mails")
        poller.stop()
        client = dovecot.client()
        client.delete_folder("Leads")  # someone recreates the folder: same mails, new UIDVALIDITY
        client.logout()
        for raw in (first, second, enquiry(subject="drei")):
            dovecot.append(raw, folder="Leads")
        poller = poller_for(stack)
        poller.start()
        wait_until(lambda: len(stored(stack)) == 3, what="the one new mail")
        wait_until(
            lambda: (
                len(dovecot.folder("Leads")) == 3
                and all(KEYWORD in f for f in dovecot.folder("Leads").values())
            ),
            what="all flagged",
        )
        poller.stop()
        with stack.db.session() as session:
            assert len(list(session.scalars(select(ImapLedger)))) == 2  # one ledger per UIDVALIDITY
    finally:
        stack.close()


def test_move_mode_moves_after_storing_and_never_deletes(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot, sink: SmtpSink
) -> None:
    stack = Stack(
        sqlite_url, relay_url=sink.url, smtp=False, config=config_with_imap(tmp_path, dovecot, after="move")
    )
    try:
        dovecot.append(enquiry(subject="verschieben"))
        poller = poller_for(stack)
        poller.start()
        wait_until(lambda: len(dovecot.folder("Processed")) == 1, what="the mail in Processed")
        poller.stop()
        assert dovecot.folder("INBOX") == {} and len(stored(stack)) == 1
    finally:
        stack.close()


def test_a_poller_killed_between_storing_and_flagging_doubles_nothing_after_restart(
    pg_url: str, tmp_path: Path, dovecot: Dovecot
) -> None:
    config = config_with_imap(tmp_path, dovecot, password_env="LMS_TEST_IMAP_PASSWORD")
    stack = Stack(
        pg_url, relay_url=f"maildir://{tmp_path}/outbox", smtp=False, worker_threads=None, config=config
    )
    env = lms_env(database_url=pg_url, relay_url=f"maildir://{tmp_path}/outbox")
    env["LMS_TEST_IMAP_PASSWORD"] = "s3cret"
    dovecot.append(enquiry(subject="nur einmal"))
    lock = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        lock.execute("LOCK TABLE imap_ledger IN EXCLUSIVE MODE")  # the poller stops after storing
        poller = LmsProcess("imap", env=env, log=tmp_path / "imap1.log")
        wait_until(lambda: len(stored(stack)) == 1, timeout=30, what="the mail stored")
        poller.kill()
        lock.rollback()
        assert all(KEYWORD not in flags for flags in dovecot.folder().values())  # never flagged
        again = LmsProcess("imap", env=env, log=tmp_path / "imap2.log")
        try:
            wait_until(
                lambda: all(KEYWORD in f for f in dovecot.folder().values()), timeout=30, what="the flag"
            )
        finally:
            assert again.stop() == 0, again.log()
        assert len(stored(stack)) == 1
    finally:
        lock.close()
        stack.close()
