"""``kill -9`` of ``lms run`` in the middle of a burst, then a restart, with exact counts.

While mails arrive over SMTP, are ingested, answered, forwarded, announced and escalated (the
dealer here escalates within seconds), the process is killed without warning. Senders retry
what was not acknowledged, as a mail server would; the process is started again. Afterwards:
every mail that got its 250 is stored exactly once, every enquiry is one lead, and every lead
has exactly one autoresponse, one forward and one notification in the Maildir, and each
escalation stage at most once.
"""

from __future__ import annotations

import email
import queue
import smtplib
import threading
from collections import Counter
from email import policy
from pathlib import Path

from sqlalchemy import func, select

from models.db import Database
from models.tables import INBOUND_FINAL_STATES, InboundMessage, Lead, OutboundMessage
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import LmsProcess, lms_env, lms_here
from tests.support.services import free_port, reachable, wait_until

MAILS = 160
PACE = 0.2  # seconds between one sender's mails: a burst of ~8 s from 4 senders

DEALER = """[[dealers]]
id = "muster"
name = "Autohaus Muster GmbH"
mailboxes = ["muster@leads.example.com"]
forward_to = ["verkauf@autohaus-muster.example"]
timezone = "Europe/Berlin"

[dealers.hours]
mon = "00:00-24:00"
tue = "00:00-24:00"
wed = "00:00-24:00"
thu = "00:00-24:00"
fri = "00:00-24:00"
sat = "00:00-24:00"
sun = "00:00-24:00"

[dealers.escalation]
stage1 = "4s"
reminder = "2s"
stage2 = "3s"

[[dealers.users]]
id = "max"
name = "Max Muster"
email = "max@autohaus-muster.example"
role = "supervisor"

[[dealers.users]]
id = "anna"
name = "Anna Berger"
email = "anna@autohaus-muster.example"
supervisor = "max"

[dealers.distribution]
default = { method = "round_robin", users = ["anna"] }
"""


class Senders:
    """Client threads that send until every mail is acknowledged, retrying refused ones."""

    def __init__(self, port: int, mails: dict[str, bytes]) -> None:
        self.port = port
        self.todo: queue.Queue[str] = queue.Queue()
        for message_id in mails:
            self.todo.put(message_id)
        self.mails = mails
        self.acked: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                message_id = self.todo.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                    client.sendmail("kunde@example.org", [DEMO_MAILBOX], self.mails[message_id])
            except (OSError, smtplib.SMTPException):
                self.todo.put(message_id)  # not acknowledged: the sender keeps it and retries
                self.stop.wait(0.05)
                continue
            with self.lock:
                self.acked.add(message_id)
            self.stop.wait(PACE)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def test_kill_9_mid_burst_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    (tmp_path / "dealer.toml").write_text(DEALER)
    smtp_port = free_port()
    env = lms_env(
        database_url=f"sqlite:///{tmp_path}/lms.db",
        relay_url=f"maildir://{tmp_path}/outbox",
        smtp_listen=f"127.0.0.1:{smtp_port}",
        web_listen=f"127.0.0.1:{free_port()}",
        config=str(tmp_path / "dealer.toml"),
        sweep_grace_seconds="1",
        sweep_interval_seconds="0.5",
        send_lease_seconds="3",
    )
    assert lms_here("migrate", env=env).exit_code == 0
    mails = {}
    for n in range(MAILS):
        message_id = f"<kill9-{n}@example.org>"
        mails[message_id] = enquiry(
            sender=f"Kunde {n} <kunde{n}@example.org>", subject=f"Probefahrt {n}", message_id=message_id
        )
    senders = Senders(smtp_port, mails)
    threads = [threading.Thread(target=senders.run) for _ in range(4)]
    first = LmsProcess("run", env=env, log=tmp_path / "run1.log")
    wait_until(lambda: reachable("127.0.0.1", smtp_port), what="lms run listening")
    for thread in threads:
        thread.start()
    try:
        outbox = tmp_path / "outbox" / "new"

        def escalating() -> bool:
            # Kill once mails are being sent and escalations fire, while the burst goes on:
            # intake, ingest, sending and the escalation pass are all at work.
            files = [p.read_bytes()[:3000] for p in outbox.iterdir()] if outbox.exists() else []
            return any(b"Erinnerung" in f or b"Eskalation" in f for f in files)

        wait_until(escalating, timeout=60, what="the first escalation mail")
        first.kill()  # SIGKILL: no cleanup of any kind
        killed_at = senders.count()
        second = LmsProcess("run", env=env, log=tmp_path / "run2.log")
        try:
            wait_until(lambda: senders.count() == MAILS, timeout=90, what="every mail acknowledged")
            db = Database(env["LMS_DATABASE_URL"])

            def settled() -> bool:
                with db.read() as session:
                    open_rows = session.scalar(
                        select(func.count())
                        .select_from(InboundMessage)
                        .where(InboundMessage.state.not_in(INBOUND_FINAL_STATES))
                    )
                    unsent = session.scalar(
                        select(func.count())
                        .select_from(OutboundMessage)
                        .where(OutboundMessage.state != "sent")
                    )
                    stage2 = session.scalar(
                        select(func.count())
                        .select_from(OutboundMessage)
                        .where(OutboundMessage.kind == "stage2")
                    )
                return open_rows == 0 and unsent == 0 and stage2 == MAILS

            wait_until(settled, timeout=120, what="every mail processed, answered and escalated")
            with db.read() as session:
                stored = Counter(session.scalars(select(InboundMessage.message_id)))
                leads = session.scalar(select(func.count()).select_from(Lead))
            db.dispose()
        finally:
            senders.stop.set()
            assert second.stop() == 0, second.log()
    finally:
        senders.stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert 0 < killed_at < MAILS  # the kill did happen mid-burst
    assert stored == dict.fromkeys(mails, 1)  # every acknowledged mail stored, and once
    assert leads == MAILS
    relayed = Counter()
    for path in (tmp_path / "outbox" / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        subject = str(message["Subject"])
        if message["Auto-Submitted"] == "auto-replied":
            relayed[("autoresponse", str(message["In-Reply-To"]))] += 1
        elif subject.startswith("[Lead #"):
            kind = "forward" if "verkauf@" in str(message["To"]) else "notification"
            relayed[(kind, subject.split("]")[0])] += 1
        elif subject.startswith(("Wochenbericht", "Weekly summary")):  # once per person and week
            relayed[("weekly", f"{message['To']} {subject.split(':')[0]}")] += 1
        else:  # Erinnerung / Eskalation Stufe 1 / Stufe 2: "… Lead #N …"
            stage = "stage2" if "Stufe 2" in subject else "stage1" if "Stufe 1" in subject else "reminder"
            relayed[(stage, subject.split("Lead #")[1].split()[0])] += 1
    kinds = Counter(kind for kind, _ in relayed)
    assert {k: kinds[k] for k in ("autoresponse", "forward", "notification", "stage1", "stage2")} == {
        "autoresponse": MAILS,
        "forward": MAILS,
        "notification": MAILS,
        "stage1": MAILS,
        "stage2": MAILS,
    }
    assert set(relayed.values()) == {1}  # nothing in the Maildir twice, reminders included
