"""``lms run`` started outside ``make run`` has no ``var/outbox``: the Maildir relay makes the
folder (and its parents) instead of failing every send until the mail is dead."""

from __future__ import annotations

from pathlib import Path

from workers.relay import Outgoing, relay_from_url


def test_the_maildir_relay_creates_its_folder_and_writes_a_mail_once(tmp_path: Path) -> None:
    relay = relay_from_url(f"maildir://{tmp_path}/var/outbox")
    mail = Outgoing("<m1@leads.example.com>", b"Subject: x\r\n\r\nbody\r\n", "", ["e@example.org"])
    with relay.session() as session:
        session.send(mail)
        session.send(mail)  # handed over again (a crash before the result was recorded)
    files = list((tmp_path / "var" / "outbox" / "new").iterdir())
    assert [f.read_bytes() for f in files] == [mail.raw]
