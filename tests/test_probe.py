"""The end-to-end probe (issue 14) against a real ``lms run`` on SQLite: ``lms ops probe`` sends
a marked enquiry to the SMTP intake, reports the measured time, and leaves no lead, mail,
outbound row or KPI behind. A mail with a forged or expired probe token is an ordinary lead
with its autoresponse; an intake that takes the mail but never makes it a lead is a timeout
(exit 2)."""

from __future__ import annotations

import json
import secrets
import shutil
import smtplib
import socket
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from models.clock import system_clock
from models.config_apply import apply_config
from models.db import Database
from models.dealer_config import load_config_file
from models.migrate import upgrade
from models.ops_tables import ProbeRun
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import ROOT, LmsProcess, lms, lms_env
from tests.support.services import free_port, wait_until
from tests.support.sink import SmtpSink

TABLES = (
    "leads",
    "lead_activities",
    "inbound_messages",
    "outbound_messages",
    "contacts",
    "lead_facts",
    "webhook_deliveries",
    "escalation_events",
)


@dataclass
class Daemon:
    dir: Path
    env: dict[str, str]
    port: int
    url: str

    def query(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(sql), params)]
        finally:
            engine.dispose()

    def counts(self) -> dict[str, int]:
        return {table: int(self.query(f"SELECT count(*) FROM {table}")[0][0]) for table in TABLES}

    def outbox_files(self) -> int:
        new = self.dir / "var" / "outbox" / "new"
        return len(list(new.iterdir())) if new.exists() else 0


def _listening(port: int) -> bool:
    with closing(socket.socket()) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("probe")
    shutil.copytree(ROOT / "examples", tmp / "examples")
    port = free_port()
    url = f"sqlite:///{tmp}/lms.db"
    env = lms_env(
        database_url=url,
        smtp_listen=f"127.0.0.1:{port}",
        web_listen=f"127.0.0.1:{free_port()}",
        sweep_interval_seconds="1",
    )
    db = Database(url)  # migrated and configured here: two `lms` processes fewer
    try:
        upgrade(db)
        with db.session() as session:
            apply_config(session, load_config_file(tmp / "examples" / "lms.toml"), now=system_clock())
    finally:
        db.dispose()
    process = LmsProcess("run", env=env, cwd=tmp, log=tmp / "run.log")
    try:
        wait_until(lambda: _listening(port), what="lms run to listen")
        yield Daemon(tmp, env, port, url)
    finally:
        code = process.stop()
    assert code == 0, process.log()


def test_the_probe_reports_its_time_and_leaves_nothing_behind(daemon: Daemon) -> None:
    before, files = daemon.counts(), daemon.outbox_files()
    out = lms(
        "ops", "probe", "--dealer", "muster", "--json", "--timeout", "20", env=daemon.env, cwd=daemon.dir
    )
    assert out.returncode == 0, out.stderr.decode()
    result = json.loads(out.stdout)
    assert result["ok"] is True and result["state"] == "ok" and result["error"] is None
    assert result["dealer"] == "muster" and result["via"] == "smtp"
    assert 0 < result["seconds"] < 20
    # The lead was made (and nothing for it: no autoresponse, forward, notification, webhook).
    assert result["removed"] == {"leads": 1, "inbound": 1, "outbound": 0, "webhooks": 0, "contacts": 1}
    assert daemon.counts() == before  # no lead, mail, activity, outbox row, fact or contact left
    assert daemon.outbox_files() == files  # nothing was sent
    runs = daemon.query("SELECT state, seconds FROM probe_runs WHERE id = :id", id=result["run_id"])
    [(state, seconds)] = runs  # what the metrics export (lms_probe_*)
    assert state == "ok" and seconds == pytest.approx(result["seconds"], abs=0.001)


def test_a_forged_or_expired_probe_token_is_an_ordinary_lead_with_its_autoresponse(daemon: Daemon) -> None:
    # A run that finished already: its token is no longer a probe's.
    tokens = {"forged": secrets.token_hex(16), "expired": secrets.token_hex(16)}
    db = Database(daemon.url)
    try:
        with db.session() as session:
            now = system_clock()
            session.add(
                ProbeRun(
                    dealer_id="muster",
                    token=tokens["expired"],
                    via="smtp",
                    started_at=now,
                    finished_at=now,
                    state="ok",
                    seconds=0.1,
                )
            )
    finally:
        db.dispose()
    senders = {}
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
        for name, token in tokens.items():
            sender = f"{name}-{secrets.token_hex(4)}@example.org"
            mail = enquiry(sender=f"Erika Mustermann <{sender}>", headers={"X-LMS-Probe": token})
            client.sendmail(sender, [DEMO_MAILBOX], mail)
            senders[name] = sender

    def answered(sender: str) -> list[tuple[object, ...]]:
        return daemon.query(
            "SELECT l.format, o.kind FROM leads l JOIN contacts c ON c.id = l.contact_id "
            "JOIN outbound_messages o ON o.lead_id = l.id AND o.kind = 'autoresponse' WHERE c.email = :email",
            email=sender,
        )

    for name, sender in senders.items():
        rows = wait_until(lambda sender=sender: answered(sender), what=f"the {name} token's autoresponse")
        assert rows == [("mail", "autoresponse")]


def test_a_probe_that_never_becomes_a_lead_is_a_timeout_with_exit_2(daemon: Daemon, sink: SmtpSink) -> None:
    # An "intake" that takes the mail and does nothing with it: no lead ever comes.
    env = {**daemon.env, "LMS_PROBE_SMTP": f"127.0.0.1:{sink.port}"}
    out = lms("ops", "probe", "--dealer", "muster", "--timeout", "0.5", env=env, cwd=daemon.dir)
    assert out.returncode == 2
    error = out.stderr.decode().strip()
    assert error.count("\n") == 0 and "timeout" in error and "no probe lead within 0.5s" in error, error
    assert out.stdout == b""
    [mail] = sink.messages
    assert mail.recipients == [DEMO_MAILBOX] and mail.envelope_from in ("", "<>")
    token = mail.message["X-LMS-Probe"]
    assert daemon.query("SELECT state FROM probe_runs WHERE token = :t", t=token) == [("timeout",)]

    # The health verdict says so until a probe succeeds again.
    def probe_issues() -> tuple[int, list[str]]:
        out = lms("ops", "health", "--json", "--dealer", "muster", env=daemon.env, cwd=daemon.dir)
        return out.returncode, [
            i["check"] for i in json.loads(out.stdout)["issues"] if i["check"].startswith("probe")
        ]

    assert probe_issues() == (2, ["probe_failing"])
    assert lms("ops", "probe", "--dealer", "muster", env=daemon.env, cwd=daemon.dir).returncode == 0
    assert probe_issues()[1] == []
