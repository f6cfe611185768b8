"""Messages per second accepted by our SMTP intake (stored durably) against a bare aiosmtpd
server that stores nothing, with the same client, in the same run.

    .venv/bin/python bench/smtp_accept.py [--messages 400] [--rounds 3] [--postgres SERVER_URL]

Each server runs in its own process so the client's threads do not share its GIL. Every
message is a unique 2 KB enquiry (identical bytes would be stored once). Prints the median
of the rounds per server and concurrency, and the ratio ours / bare.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAILBOX = "muster@leads.example.com"


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(size: int = 2048) -> bytes:
    head = (
        f"From: Erika Mustermann <erika@example.org>\r\nTo: {MAILBOX}\r\n"
        f"Subject: Anfrage VW Golf\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    line = b"Guten Tag, ich interessiere mich fuer den Golf und haette gern ein Angebot.\r\n"
    body = (line * (size // len(line) + 1))[: size - len(head)]
    return head + body


def serve_bare(port: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    from aiosmtpd.controller import Controller

    class Discard:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    controller = Controller(Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()


def serve_ours(port: int, url: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    from intake.smtp import IntakeHandler, make_smtp_controller
    from models.clock import system_clock
    from models.config_apply import apply_config
    from models.db import Database
    from models.dealer_config import load_config_file
    from models.migrate import upgrade

    db = Database(url)
    upgrade(db)
    with db.session() as session:
        apply_config(
            session, load_config_file(Path(__file__).parents[1] / "examples/lms.toml"), now=system_clock()
        )
    controller = make_smtp_controller(IntakeHandler(db), host="127.0.0.1", port=port, max_bytes=26_214_400)
    controller.start()
    ready.set()
    threading.Event().wait()


def drive(port: int, total: int, concurrency: int) -> float:
    """Send ``total`` messages over ``concurrency`` connections; messages per second."""
    payloads = [message() for _ in range(total)]
    chunks = [payloads[i::concurrency] for i in range(concurrency)]
    errors: list[BaseException] = []

    def client(chunk: list[bytes]) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
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
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return total / elapsed


def start(target: object, *args: object) -> tuple[multiprocessing.Process, int]:
    port = free_port()
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(target=target, args=(port, *args, ready), daemon=True)
    proc.start()
    if not ready.wait(60):
        raise RuntimeError("server did not start")
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="measure on PostgreSQL: a throw-away database is created on this server "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) and dropped afterwards",
    )
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="lms-bench-")
    url = f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    scratch = None
    if args.postgres:
        scratch = ScratchPostgres(args.postgres)
        url = scratch.url
    print(f"database: {url.split('@')[-1]}  messages/round: {args.messages}  rounds: {args.rounds}")
    bare, bare_port = start(serve_bare)
    ours, our_port = start(serve_ours, url)
    try:
        drive(bare_port, 50, 2)  # warm up both
        drive(our_port, 50, 2)
        print(f"{'concurrency':>11}  {'bare msg/s':>11}  {'ours msg/s':>11}  {'ours/bare':>9}")
        for concurrency in (1, 10):
            bare_rates, our_rates = [], []
            for _ in range(args.rounds):  # interleaved, so drift hits both alike
                bare_rates.append(drive(bare_port, args.messages, concurrency))
                our_rates.append(drive(our_port, args.messages, concurrency))
            b, o = statistics.median(bare_rates), statistics.median(our_rates)
            print(f"{concurrency:>11}  {b:>11.0f}  {o:>11.0f}  {o / b:>9.2f}")
    finally:
        bare.terminate()
        ours.terminate()
        ours.join()
        if scratch:
            scratch.drop()


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
