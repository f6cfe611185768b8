"""Messages per second accepted by our SMTP intake (stored durably, fsync on) against a bare
aiosmtpd server that stores nothing, with the same client, in the same run.

    .venv/bin/python bench/smtp_accept.py                       # SQLite, everything
    .venv/bin/python bench/smtp_accept.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/smtp_accept.py --modes smtp --concurrency 10 --sizes 2048   # one cell

Servers (each its own process, started with the real `lms` command, so the client's threads
do not share their GIL):

    bare     aiosmtpd 1.4.6 with a handler that answers 250 and keeps nothing
    smtp     `lms smtp`                 one acceptor process
    smtp x2  `lms smtp --processes 2`   two acceptor processes on one port (SO_REUSEPORT)
    run      `lms run`                  intake + workers + scheduler + web in one process

Each of our servers runs twice, with metrics on (``LMS_METRICS_DIR``, the default) and off
(``LMS_METRICS_DIR=""``), each on its own database, so the cost of the Prometheus counters in
the intake shows in the same run (issue 14: on/off at least 0.95).

Every message is a unique enquiry of the given size (identical bytes would be stored once).
Rounds of bare, ours with metrics off and ours with metrics on are interleaved so that load
from elsewhere hits all alike; the table shows the median of the rounds, the ratio ours (metrics
on) / bare and the ratio metrics on / off (higher is better). On a shared machine the figures
are indicative: compare ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import os
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAILBOX = "muster@leads.example.com"
MODES = {"smtp": ("smtp",), "smtp x2": ("smtp", "--processes", "2"), "run": ("run",)}
# Targets of issue 13: (mode, concurrency) → minimum ours/bare.
TARGETS = {("smtp", 10): 1.0, ("smtp x2", 10): 1.7, ("run", 10): 0.5}
# Issue 14: metrics on / metrics off, every cell.
METRICS_TARGET = 0.95

BARE = """
import sys, threading
from aiosmtpd.controller import Controller
class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
Controller(Discard(), hostname="127.0.0.1", port=int(sys.argv[1])).start()
threading.Event().wait()
"""


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(size: int) -> bytes:
    head = (
        f"From: Erika Mustermann <erika@example.org>\r\nTo: {MAILBOX}\r\n"
        f"Subject: Anfrage VW Golf\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    line = b"Guten Tag, ich interessiere mich fuer den Golf und haette gern ein Angebot.\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head) - 2)]
    return head + body + b"\r\n"


CLIENT_PROCESSES = 1


def drive(port: int, total: int, concurrency: int, size: int) -> float:
    """Send ``total`` messages over ``concurrency`` connections, from ``CLIENT_PROCESSES``
    processes; messages per second."""
    processes = min(CLIENT_PROCESSES, concurrency)
    if processes == 1:
        start, end = _drive_threads(port, total, concurrency, size)
        return total / (end - start)
    import multiprocessing

    shares = [(port, total // processes, concurrency // processes, size) for _ in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        spans = pool.starmap(_drive_threads, shares)
    # perf_counter is the system-wide monotonic clock on Linux: comparable across processes.
    return sum(share[1] for share in shares) / (max(e for _, e in spans) - min(s for s, _ in spans))


def _drive_threads(port: int, total: int, concurrency: int, size: int) -> tuple[float, float]:
    payloads = [message(size) for _ in range(total)]
    chunks = [payloads[i::concurrency] for i in range(concurrency)]
    errors: list[BaseException] = []

    def client(chunk: list[bytes]) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
                for raw in chunk:
                    smtp.sendmail("erika@example.org", [MAILBOX], raw)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.perf_counter()
    if errors:
        raise errors[0]
    return start, end


def wait_for_smtp(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                smtp.noop()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


class Server:
    def __init__(self, args: list[str], port: int, env: dict[str, str], log: Path, cwd: Path) -> None:
        self.port = port
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_smtp(port, self.proc, log)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def lms_env(url: str, port: int, work: Path, *, metrics: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env.update(
        LMS_METRICS_DIR=str(work / f"metrics-{port}") if metrics else "",
        LMS_DATABASE_URL=url,
        LMS_SMTP_LISTEN=f"127.0.0.1:{port}",
        LMS_WEB_LISTEN=f"127.0.0.1:{free_port()}",
        LMS_RELAY_URL=f"maildir://{work}/outbox",
        # The benchmark opens up to 50 connections from one address, and more in a row.
        LMS_SMTP_MAX_CONNECTIONS_PER_CLIENT="0",
        LMS_LOG_FORMAT="text",
    )
    return env


def prepare(url: str, work: Path) -> None:
    env = lms_env(url, free_port(), work)
    for args in (["migrate"], ["config", "apply", str(ROOT / "examples/lms.toml")]):
        subprocess.run(
            [sys.executable, "-m", "lms", *args], env=env, cwd=work, check=True, capture_output=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per round (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell (default 3)")
    parser.add_argument("--concurrency", default="1,10,50", help="client connections (default 1,10,50)")
    parser.add_argument("--sizes", default="2048,20480", help="message sizes in bytes (default 2048,20480)")
    parser.add_argument("--modes", default="smtp,smtp x2,run", help="of: smtp, 'smtp x2', run")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=max(1, (os.cpu_count() or 1) // 4),
        help="client processes sharing the connections (default: a quarter of the cores). With one "
        "Python client process the client itself tops out at a few thousand messages a second",
    )
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="measure on PostgreSQL: a throw-away database is created on this server "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) for each server and dropped afterwards",
    )
    args = parser.parse_args()
    global CLIENT_PROCESSES
    CLIENT_PROCESSES = args.client_processes
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="lms-bench-"))
    print(
        f"database: {'PostgreSQL' if args.postgres else 'SQLite (WAL, synchronous=FULL)'}; "
        f"{args.messages} messages a round, median of {args.rounds} interleaved rounds; "
        f"cpus: {os.cpu_count()}, client processes: {args.client_processes}"
    )
    bare_port = free_port()
    bare = Server(
        [sys.executable, "-c", BARE, str(bare_port)], bare_port, dict(os.environ), work / "bare.log", work
    )
    rows = []
    try:
        drive(bare_port, 50, 2, 2048)
        header = (
            f"{'server':<8} {'size':>6} {'conc':>4}  {'bare msg/s':>10}  {'off msg/s':>10}"
            f"  {'ours msg/s':>10}  {'ours/bare':>9}  {'on/off':>6}  target"
        )
        print(header)
        print("-" * len(header))
        for mode in modes:
            servers: dict[bool, Server] = {}  # metrics on / off
            scratches: list[ScratchPostgres] = []
            try:
                for metrics in (False, True):
                    scratch = ScratchPostgres(args.postgres) if args.postgres else None
                    scratches += [scratch] if scratch else []
                    name = f"{mode.replace(' ', '')}-{'on' if metrics else 'off'}"
                    url = scratch.url if scratch else f"sqlite:///{work}/{name}.db"
                    prepare(url, work)
                    port = free_port()
                    servers[metrics] = Server(
                        [sys.executable, "-m", "lms", *MODES[mode]],
                        port,
                        lms_env(url, port, work, metrics=metrics),
                        work / f"{name}.log",
                        work,
                    )
                    drive(port, 100, 10, 2048)  # warm up
                off, on = servers[False].port, servers[True].port
                for size in sizes:
                    for concurrency in concurrencies:
                        bare_rates, off_rates, on_rates = [], [], []
                        for index in range(args.rounds):
                            bare_rates.append(drive(bare_port, args.messages, concurrency, size))
                            # Alternate which goes first: with `run` the one measured before keeps
                            # ingesting its round in the background while the other is measured.
                            pair = [(off, off_rates), (on, on_rates)]
                            for port, rates in pair if index % 2 == 0 else pair[::-1]:
                                rates.append(drive(port, args.messages, concurrency, size))
                        b = statistics.median(bare_rates)
                        f, o = statistics.median(off_rates), statistics.median(on_rates)
                        target = TARGETS.get((mode, concurrency))
                        verdicts = (
                            []
                            if target is None
                            else [f"≥{target:.1f} {'met' if o / b >= target else 'NOT met'}"]
                        )
                        verdicts.append(
                            f"on/off ≥{METRICS_TARGET} {'met' if o / f >= METRICS_TARGET else 'NOT met'}"
                        )
                        row = (
                            f"{mode:<8} {size:>6} {concurrency:>4}  {b:>10.0f}  {f:>10.0f}  {o:>10.0f}"
                            f"  {o / b:>9.2f}  {o / f:>6.2f}  {'; '.join(verdicts)}"
                        )
                        rows.append(row)
                        print(row, flush=True)
            finally:
                for server in servers.values():
                    server.stop()
                for scratch in scratches:
                    scratch.drop()
    finally:
        bare.stop()
    print("\n'run' keeps ingesting in the background while later rounds are measured, as in production.")


class ScratchPostgres:
    def __init__(self, server_url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        self.admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.name = f"lms_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = make_url(server_url).set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
