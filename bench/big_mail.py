"""Memory of ``lms run`` for one big mail: the peak resident size (VmHWM) of the process while
a mail of N MB (an 18 MB PDF attached by default: 25 MB on the wire) is received over SMTP,
ingested, answered, forwarded (with the original attached) and announced, against the same
process idle, in the same run.

    .venv/bin/python bench/big_mail.py [--megabytes 18]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.processes import LmsProcess, lms, lms_env  # noqa: E402
from tests.support.services import free_port, reachable, wait_until  # noqa: E402


def memory(pid: int) -> tuple[int, int]:
    """(resident now, peak resident) in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=18, help="size of the attachment")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lms-big-"))
    port = free_port()
    env = lms_env(
        database_url=f"sqlite:///{tmp}/lms.db",
        relay_url=f"maildir://{tmp}/outbox",
        smtp_listen=f"127.0.0.1:{port}",
        web_listen=f"127.0.0.1:{free_port()}",
        config=str(ROOT / "examples" / "lms.toml"),
    )
    assert lms("migrate", env=env).returncode == 0
    run = LmsProcess("run", env=env, log=tmp / "run.log")
    try:
        wait_until(lambda: reachable("127.0.0.1", port), what="lms run")
        time.sleep(1)  # let start-up allocations settle before reading the idle figure
        idle = memory(run.proc.pid)
        mail = EmailMessage()
        mail["From"] = "Erika Mustermann <erika@example.org>"
        mail["To"] = "muster@leads.example.com"
        mail["Subject"] = "Unterlagen zur Finanzierung"
        mail.set_content("Guten Tag, anbei meine Unterlagen.\nErika Mustermann")
        mail.add_attachment(
            os.urandom(args.megabytes << 20), maintype="application", subtype="pdf", filename="u.pdf"
        )
        raw = mail.as_bytes()
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            client.sendmail("erika@example.org", ["muster@leads.example.com"], raw)
        outbox = tmp / "outbox" / "new"
        wait_until(
            lambda: outbox.exists() and len(list(outbox.iterdir())) >= 3, timeout=120, what="the 3 mails"
        )
        after = memory(run.proc.pid)
    finally:
        run.stop()
    print(f"mail on the wire: {len(raw) / 1e6:.1f} MB")
    print(f"lms run idle:     {idle[0]} MB resident (peak {idle[1]} MB since start)")
    print(f"after the mail:   {after[0]} MB resident, peak {after[1]} MB")
    print(f"peak growth / mail size: {(after[1] - idle[0]) / (len(raw) / 1e6):.1f}")


if __name__ == "__main__":
    main()
