"""``lms run`` as ``make run`` starts it: embedded defaults, one process, graceful stop."""

from __future__ import annotations

import json
import mailbox
import shutil
import smtplib
import subprocess
import urllib.request
from pathlib import Path

from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import ROOT, LmsProcess, lms, lms_env
from tests.support.services import free_port, wait_until


def test_lms_run_on_embedded_defaults_turns_a_mail_into_a_lead_and_an_outbox_file(tmp_path: Path) -> None:
    # A fresh working directory, as on a fresh clone: var/ does not exist yet.
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = free_port()
    web_port = free_port()
    env = lms_env(
        smtp_listen=f"127.0.0.1:{port}", web_listen=f"127.0.0.1:{web_port}", sweep_interval_seconds="1"
    )
    assert lms("migrate", env=env, cwd=tmp_path).returncode == 0
    assert lms("config", "apply", "examples/lms.toml", env=env, cwd=tmp_path).returncode == 0
    daemon = LmsProcess("run", env=env, cwd=tmp_path, log=tmp_path / "run.log")
    try:

        def send() -> bool:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail("erika@example.org", [DEMO_MAILBOX], enquiry())
                    try:
                        client.sendmail("erika@example.org", ["nobody@leads.example.com"], enquiry())
                    except smtplib.SMTPRecipientsRefused as refused:
                        assert refused.recipients["nobody@leads.example.com"][0] == 550
                    else:
                        raise AssertionError("an unknown mailbox was accepted")
                return True
            except (ConnectionRefusedError, smtplib.SMTPServerDisconnected):
                return False

        wait_until(send, what="lms run to listen")

        def lead_listed() -> dict[str, object] | None:
            out = lms("leads", "list", "--json", env=env, cwd=tmp_path)
            data = json.loads(out.stdout)
            return data if data["total"] == 1 else None

        data = wait_until(lead_listed, what="the lead in `lms leads list --json`")
        assert data["leads"][0]["contact"]["email"] == "erika@example.org"  # type: ignore[index]
        outbox = tmp_path / "var" / "outbox"
        wait_until(  # the answer, the forward to the dealer and the editor's notification
            lambda: outbox.exists() and len(mailbox.Maildir(str(outbox), create=False)) == 3,
            what="the autoresponse file in var/outbox",
        )
        # The web API of the same process, with a personal token (anna edits the lead).
        token = lms("users", "token", "muster", "anna", env=env, cwd=tmp_path).stdout.decode().split()[-1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port}/api/leads", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["total"] == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=10) as response:
            assert json.loads(response.read()) == {"ok": True}
        status = json.loads(lms("ops", "status", "--json", env=env, cwd=tmp_path).stdout)
        assert set(status) >= {"inbound", "outbound", "queues", "oldest_pending_seconds", "dead"}
        assert status["inbound"] == {"processed": 1} and status["outbound"] == {"sent": 3}
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()
    assert "stopped" in daemon.log()


def test_make_run_and_make_test_are_what_the_readme_opens_with() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[: readme.index("\n## ", readme.index("make test"))]
    assert "make run" in quick_start and "make test" in quick_start
    dry = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "lms migrate" in dry and "lms config apply examples/lms.toml" in dry and "lms run" in dry
    assert "make test" in (ROOT / ".ci" / "run").read_text()
