"""A mail that arrives while the poller is busy storing is taken at once: the server announces
it with the answer to one of our own commands and counts it as told, so IDLE would not."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.support.dovecot import Dovecot
from tests.support.imap_cases import make_stack, poller, stored, subjects
from tests.support.mails import enquiry
from tests.support.services import wait_until


def test_a_mail_announced_during_the_poll_is_taken_without_waiting_for_idle(
    pg_url: str, tmp_path: Path, dovecot: Dovecot
) -> None:
    stack = make_stack(tmp_path, pg_url, dovecot.imap_toml())
    lock = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    imap = poller(stack)
    try:
        imap.start()
        wait_until(imap.idling.is_set, what="the poller idling")
        lock.execute("LOCK TABLE imap_ledger IN EXCLUSIVE MODE")  # the poller stops after storing
        dovecot.append(enquiry(subject="eins"))
        wait_until(lambda: len(stored(stack)) == 1, what="the first mail stored")
        dovecot.append(enquiry(subject="zwei"))  # arrives while the poller waits on the ledger
        lock.rollback()
        # Dovecot tells "* 2 EXISTS" with the answer to the flagging of the first mail; the
        # IDLE after it stays silent (renewed only after ten minutes).
        wait_until(lambda: len(stored(stack)) == 2, timeout=15, what="the second mail at once")
    finally:
        imap.stop()
        lock.close()
        stack.close()
    assert subjects(stack) == [b"eins", b"zwei"]
