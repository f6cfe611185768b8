"""IMAP obeys LMS_SMTP_MAX_BYTES: a larger mail is not stored, not lost from sight (flagged in
the mailbox, listed in ``lms ops status``) and not fetched again and again."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from intake.imap import OUR_KEYWORD, TOO_LARGE_KEYWORD
from lms.cli import main
from tests.support.dovecot import Dovecot
from tests.support.imap_cases import imap_status, make_stack, poller, stored, subjects
from tests.support.mails import enquiry
from tests.support.services import wait_until

LIMIT = 20_000


def test_a_mail_over_the_size_limit_is_left_flagged_in_the_mailbox_and_shown_never_refetched(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot
) -> None:
    big = enquiry(subject="Riesige Anlage", body="Fotos vom Wagen\n" + "x" * 76 * 400)
    assert len(big) > LIMIT
    dovecot.append(enquiry(subject="klein eins"))
    dovecot.append(big)
    dovecot.append(enquiry(subject="klein zwei"))
    stack = make_stack(tmp_path, sqlite_url, dovecot.imap_toml(), smtp_max_bytes=LIMIT)
    try:
        first = poller(stack)
        first.start()
        try:
            wait_until(lambda: imap_status(stack).get("skipped_total") == 1, what="the big mail recorded")
            wait_until(lambda: len(stored(stack)) == 2, what="the two small mails")
        finally:
            first.stop()
        assert subjects(stack) == [b"klein eins", b"klein zwei"]
        flags = dovecot.folder()
        big_uid = 2
        assert b"\\Flagged" in flags[big_uid] and TOO_LARGE_KEYWORD.encode() in flags[big_uid]
        assert b"\\Seen" not in flags[big_uid] and OUR_KEYWORD.encode() not in flags[big_uid]  # unread
        assert all(OUR_KEYWORD.encode() in flags[uid] for uid in (1, 3))
        status = imap_status(stack)
        [skipped] = status["skipped"]
        assert skipped["uid"] == big_uid and skipped["subject"] == "Riesige Anlage"
        assert skipped["size"] > LIMIT and "LMS_SMTP_MAX_BYTES" in skipped["reason"]
        assert status["error_kind"] is None  # the mailbox works; one mail needs a person
        env = {"LMS_DATABASE_URL": stack.settings.database_url}
        human = CliRunner(env=env).invoke(main, ["ops", "status"]).output
        assert "1 mail(s) left in the mailbox, not stored" in human and "Riesige Anlage" in human

        # A restarted poller goes past it: no second record, no fetch loop, new mail flows.
        dovecot.append(enquiry(subject="klein drei"))
        second = poller(stack)
        second.start()
        try:
            wait_until(lambda: len(stored(stack)) == 3, what="the mail after the restart")
        finally:
            second.stop()
        assert imap_status(stack)["skipped_total"] == 1
        assert OUR_KEYWORD.encode() not in dovecot.folder()[big_uid]
    finally:
        stack.close()
