"""The whole pipeline, end to end: N enquiries sent over SMTP by 8 clients until every lead's
mails (answer, forward, notification) are at the relay, against the standard library's bare
parse rate of the same mails, measured in the same run.

    .venv/bin/python bench/pipeline.py                       # embedded defaults: lms run, SQLite,
                                                             # in-process broker, Maildir relay
    .venv/bin/python bench/pipeline.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        --redis redis://127.0.0.1:6379/0                     # lms smtp + 2 lms worker processes
    .venv/bin/python bench/pipeline.py --rate 50             # offered load: latency at 50 mails/s

The mails are a mix of plain enquiries (4 KB of text), portal mails (mobile.de, customer in
Reply-To and form fields) and ADF/XML leads, each from its own customer, so each becomes a
new lead with three mails. Prints the accept rate (250s per second), the end-to-end rate
(leads whose three mails reached the relay, per second, from the first 250 to the last
mail), p50/p99 from a mail's 250 to its autoresponse at the relay (the Maildir file's
mtime), and the ratio to the bare parse rate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing
from email import message_from_bytes, policy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAILBOX = "muster@leads.example.com"
LINE = "Guten Tag, ich interessiere mich für den Golf und hätte gern ein Angebot mit Finanzierung.\n"


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _head(sender: str, subject: str, message_id: str, extra: str = "", ctype: str = "text/plain") -> str:
    return (
        f"From: {sender}\r\nTo: {MAILBOX}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
        f"Date: Sat, 28 Nov 2026 09:15:00 +0100\r\nMIME-Version: 1.0\r\n{extra}"
        f"Content-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )


def plain(n: int, message_id: str) -> bytes:
    body = (LINE * 45)[:3900] + f"\nViele Grüße\nKunde {n}\n"
    return (_head(f"Kunde {n} <kunde{n}@example.org>", f"Anfrage VW Golf {n}", message_id) + body).encode()


def portal(n: int, message_id: str) -> bytes:
    body = (
        f"Name: Kunde {n}\nE-Mail: kunde{n}@example.org\nTelefon: 0176 {1000000 + n}\n"
        f"Fahrzeug: VW Golf 1.5 TSI\nPreis: 18.900 €\nNachricht:\nIst eine Probefahrt möglich? {n}\n"
    )
    extra = f"Reply-To: Kunde {n} <kunde{n}@example.org>\r\n"
    return (
        _head("mobile.de <noreply@mobile.de>", "Anfrage zu Ihrem Inserat", message_id, extra) + body
    ).encode()


def adf(n: int, message_id: str) -> bytes:
    body = (
        '<?xml version="1.0"?>\n<?adf version="1.0"?>\n<adf><prospect>'
        f'<id sequence="1" source="LeadHub">LH-{n}-{uuid.uuid4().hex[:8]}</id>'
        "<requestdate>2026-11-28T09:15:00+01:00</requestdate>"
        '<vehicle interest="buy" status="used"><year>2021</year><make>VW</make><model>Golf</model></vehicle>'
        f'<customer><contact><name part="full">Kunde {n}</name><email>kunde{n}@example.org</email>'
        f'<phone type="voice">+49176{2000000 + n}</phone></contact>'
        "<comments>Bitte um Rückruf wegen Probefahrt.</comments></customer>"
        "<vendor><vendorname>Autohaus Muster</vendorname></vendor>"
        "<provider><name>LeadHub</name></provider></prospect></adf>\n"
    )
    return (
        _head("LeadHub <leads@leadhub.example>", "New lead", message_id, ctype="text/xml") + body
    ).encode()


def mails(count: int) -> list[tuple[str, bytes]]:
    kinds = (plain, portal, adf)
    out = []
    for n in range(count):
        message_id = f"<bench-{n}-{uuid.uuid4().hex[:10]}@example.org>"
        out.append((message_id, kinds[n % 3](n, message_id)))
    return out


def bare_parse_rate(raws: list[bytes], rounds: int = 3) -> float:
    """The standard library's parse of the same mails: headers read, body decoded."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in raws:
            message = message_from_bytes(raw, policy=policy.default)
            str(message["from"])
            str(message["subject"])
            body = message.get_body(("plain", "html"))  # type: ignore[attr-defined]
            if body is not None:
                body.get_content()
        rates.append(len(raws) / (time.perf_counter() - start))
    return statistics.median(rates)


def lms(*args: str, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "lms", *args], env=env, cwd=ROOT, stdout=out, stderr=out)


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with closing(socket.socket()) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def send_all(batch: list[tuple[str, bytes]], port: int, clients: int, rate: float | None) -> dict[str, float]:
    """Send with ``clients`` connections; the wall-clock time of each 250 by Message-ID."""
    acked: dict[str, float] = {}
    lock = threading.Lock()
    start = time.time()

    def client(index: int) -> None:
        mine = batch[index::clients]
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for k, (message_id, raw) in enumerate(mine):
                if rate:  # the k-th of this client's mails is due at (k * clients + index) / rate
                    due = start + (k * clients + index) / rate
                    pause = due - time.time()
                    if pause > 0:
                        time.sleep(pause)
                for attempt in range(20):
                    try:
                        smtp.sendmail(f"kunde{index}@example.org", [MAILBOX], raw)
                        break
                    except smtplib.SMTPResponseException as exc:  # 451: try again, as a server would
                        if exc.smtp_code >= 500 or attempt == 19:
                            raise
                        time.sleep(0.2)
                with lock:
                    acked[message_id] = time.time()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return acked


def wait_outbox(outbox: Path, expected: int, timeout: float) -> list[Path]:
    deadline = time.monotonic() + timeout
    new = outbox / "new"
    while time.monotonic() < deadline:
        files = list(new.iterdir()) if new.exists() else []
        if len(files) >= expected:
            return files
        time.sleep(0.1)
    files = list(new.iterdir()) if new.exists() else []
    print(f"warning: only {len(files)} of {expected} mails reached the relay in {timeout:.0f} s")
    return files


def answers(files: list[Path]) -> dict[str, float]:
    """In-Reply-To (the enquiry's Message-ID) → when its autoresponse reached the relay."""
    found = {}
    for path in files:
        head = path.read_bytes().split(b"\r\n\r\n", 1)[0]
        if b"Auto-Submitted: auto-replied" not in head:
            continue
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"in-reply-to:"):
                found[line.split(b":", 1)[1].strip().decode()] = path.stat().st_mtime
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--rate", type=float, default=None, help="offered mails per second (default: flat out)"
    )
    parser.add_argument("--postgres", default=None, help="server URL; a fresh database is made on it")
    parser.add_argument("--redis", default=None, help="broker URL for the multi-process shape")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (with --postgres)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    batch = mails(args.messages)
    bare = bare_parse_rate([raw for _, raw in batch])
    tmp = Path(tempfile.mkdtemp(prefix="lms-bench-"))
    smtp_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env.update(
        LMS_RELAY_URL=f"maildir://{tmp}/outbox",
        LMS_SMTP_LISTEN=f"127.0.0.1:{smtp_port}",
        LMS_WEB_LISTEN=f"127.0.0.1:{web_port}",
        LMS_QUEUE_PREFIX=f"bench{uuid.uuid4().hex[:8]}",
        LMS_LOG_FORMAT="text",
    )
    database = None
    if args.postgres:
        import psycopg

        database = f"lms_bench_{uuid.uuid4().hex[:8]}"
        admin = args.postgres.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env["LMS_DATABASE_URL"] = args.postgres.rsplit("/", 1)[0] + f"/{database}"
        env["LMS_BROKER_URL"] = args.redis or "redis://127.0.0.1:6379/0"
    else:
        env["LMS_DATABASE_URL"] = f"sqlite:///{tmp}/lms.db"
    subprocess.run(
        [sys.executable, "-m", "lms", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    config = ROOT / "examples" / "lms.toml"
    subprocess.run(
        [sys.executable, "-m", "lms", "config", "apply", str(config)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    if args.postgres:
        broker = env["LMS_BROKER_URL"].split("://")[0]
        shape = f"PostgreSQL + {broker}: lms smtp, {args.workers} lms worker, lms scheduler"
        procs = [
            lms("smtp", env=env, log=tmp / "smtp.log"),
            lms("scheduler", env=env, log=tmp / "scheduler.log"),
        ]
        procs += [lms("worker", env=env, log=tmp / f"worker{i}.log") for i in range(args.workers)]
    else:
        shape = "embedded defaults: lms run (SQLite, in-process broker, Maildir relay)"
        procs = [lms("run", env=env, log=tmp / "run.log")]
    try:
        wait_port(smtp_port)
        started = time.time()
        acked = send_all(batch, smtp_port, args.clients, args.rate)
        accepted = time.time()
        files = wait_outbox(tmp / "outbox", 3 * len(batch), args.timeout)
        last = max((f.stat().st_mtime for f in files), default=accepted)
        done = answers(files)
        latencies = [done[mid] - t for mid, t in acked.items() if mid in done]
        first = min(acked.values())
        print(f"shape:     {shape}")
        print(
            f"mails:     {len(batch)} (plain, portal, ADF), {args.clients} clients"
            + (f", offered {args.rate:.0f}/s" if args.rate else "")
        )
        print(f"accept:    {len(acked) / (accepted - started):8.1f} mails/s (all 250s)")
        print(f"end to end:{len(batch) / (last - first):8.1f} leads/s ({len(files)} mails at the relay)")
        if latencies:
            print(
                f"250 → autoresponse at the relay: p50 {statistics.median(latencies) * 1000:.0f} ms, "
                f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms ({len(latencies)} answers)"
            )
        print(f"bare stdlib parse of the same mails: {bare:8.1f} mails/s")
        print(f"end to end / bare parse: {len(batch) / (last - first) / bare:.2f}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if database:
            import psycopg

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
