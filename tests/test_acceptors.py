"""``lms smtp --processes N``: N acceptor processes on one port (SO_REUSEPORT)."""

from __future__ import annotations

import json
import re
import shutil
import smtplib
from pathlib import Path

from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import ROOT, LmsProcess, lms_env, lms_here
from tests.support.services import free_port, wait_until


def prepare(env: dict[str, str]) -> None:
    """Migrated and configured, in the test's process (the daemons are what runs as processes)."""
    assert lms_here("migrate", env=env).exit_code == 0
    configured = lms_here("config", "apply", str(ROOT / "examples" / "lms.toml"), env=env)
    assert configured.exit_code == 0, configured.output


def send_and_tell_acceptor(port: int, sender: str = "erika@example.org") -> str | None:
    """One mail on a new connection; which acceptor stored it (None while starting)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo()
            client.mail(sender)
            client.rcpt(DEMO_MAILBOX)
            code, text = client.data(enquiry(sender=f"Kunde <{sender}>"))
    except OSError:
        return None
    assert code == 250, text
    match = re.search(rb"by acceptor (\d+)/2", text)
    assert match, text
    return match.group(1).decode()


def test_two_acceptor_processes_share_the_port_and_both_accept(sqlite_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = lms_env(database_url=sqlite_url, smtp_listen=f"127.0.0.1:{port}")
    prepare(env)
    smtp = LmsProcess("smtp", "--processes", "2", env=env, log=tmp_path / "smtp.log")
    seen: list[str] = []
    try:
        wait_until(lambda: send_and_tell_acceptor(port), timeout=30, what="the SMTP intake to start")

        def both_seen() -> bool:
            acceptor = send_and_tell_acceptor(port)
            if acceptor:
                seen.append(acceptor)
            return {"1", "2"} <= set(seen)

        wait_until(both_seen, timeout=30, what="mails accepted by both acceptors")
    finally:
        assert smtp.stop() == 0, smtp.log()
    assert "acceptor 2/2" in smtp.log()


def test_lms_run_with_two_acceptors_turns_every_mail_into_a_lead(tmp_path: Path) -> None:
    # The second acceptor has no workers: with the in-process broker it hands its mails over
    # through the database, and the sweeper of the first process picks them up.
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = free_port()
    env = lms_env(
        smtp_listen=f"127.0.0.1:{port}",
        web_listen=f"127.0.0.1:{free_port()}",
        smtp_processes="2",
        sweep_interval_seconds="1",
    )
    # The daemon's database by its default name, in its working directory.
    here = {**env, "LMS_DATABASE_URL": f"sqlite:///{tmp_path}/var/lms.db"}
    prepare(here)
    daemon = LmsProcess("run", env=env, cwd=tmp_path, log=tmp_path / "run.log")
    try:
        wait_until(lambda: send_and_tell_acceptor(port), timeout=30, what="lms run to accept mail")
        # One new customer per mail, until both acceptors have taken some (and at least 20).
        by_acceptor: dict[str, int] = {}
        while sum(by_acceptor.values()) < 20 or len(by_acceptor) < 2:
            assert sum(by_acceptor.values()) < 200, f"one acceptor took everything: {by_acceptor}"
            acceptor = send_and_tell_acceptor(port, f"kunde{sum(by_acceptor.values())}@example.org")
            if acceptor:
                by_acceptor[acceptor] = by_acceptor.get(acceptor, 0) + 1

        def leads() -> int:
            result = lms_here("leads", "list", "--json", "--limit", "1000", env=here)
            return int(json.loads(result.stdout)["total"]) if result.exit_code == 0 else 0

        # Erika's lead and one per customer, those of acceptor 2 through the sweeper.
        expected = 1 + sum(by_acceptor.values())
        wait_until(lambda: leads() == expected, timeout=60, what="a lead for every mail")
    finally:
        assert daemon.stop() == 0, daemon.log()
