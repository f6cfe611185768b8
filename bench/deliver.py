"""Wall time of `lms deliver` (the MTA pipe: one process per mail, start-up included) against
`python -c pass` in the same run, and mails per second with 10 pipes at once.

    .venv/bin/python bench/deliver.py [--runs 20] [--parallel 10] [--mails 100] [--postgres SERVER_URL]

Runs alternate between the two commands so that load from elsewhere hits both alike; the
figures are medians. Target (issue 13): `lms deliver` at most 6x `python -c pass`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAILBOX = "muster@leads.example.com"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def mail() -> bytes:
    return (
        f"From: Erika Mustermann <erika@example.org>\r\nTo: {MAILBOX}\r\nSubject: Probefahrt\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n\r\nGuten Tag, ich haette gern eine Probefahrt.\r\n"
    ).encode()


def lms_command() -> list[str]:
    script = Path(sys.executable).with_name("lms")
    # What a mail server runs: the installed console script.
    return [str(script)] if script.exists() else [sys.executable, "-m", "lms"]


def timed(args: list[str], env: dict[str, str], data: bytes | None) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, env=env, input=data, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args} exited {result.returncode}: {result.stderr.decode()[-1000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--mails", type=int, default=100, help="mails for the parallel measurement")
    parser.add_argument(
        "--postgres", metavar="SERVER_URL", help="measure on a throw-away PostgreSQL database"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lms-bench-deliver-"))
    scratch = None
    if args.postgres:
        from smtp_accept import ScratchPostgres

        scratch = ScratchPostgres(args.postgres)
        url = scratch.url
    else:
        url = f"sqlite:///{work}/deliver.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env["LMS_DATABASE_URL"] = url
    try:
        for setup in (["migrate"], ["config", "apply", str(ROOT / "examples/lms.toml")]):
            subprocess.run([*lms_command(), *setup], env=env, cwd=work, check=True, capture_output=True)
        deliver = [*lms_command(), "deliver", "--recipient", MAILBOX, "--sender", "erika@example.org"]
        bare = [sys.executable, "-c", "pass"]
        timed(deliver, env, mail())  # warm the page cache
        passes, delivers = [], []
        for _ in range(args.runs):
            passes.append(timed(bare, env, None))
            delivers.append(timed(deliver, env, mail()))
        p, d = statistics.median(passes), statistics.median(delivers)
        print(
            f"database: {'PostgreSQL' if scratch else 'SQLite (WAL, synchronous=FULL)'}; "
            f"median of {args.runs} runs"
        )
        print(f"python -c pass   {p * 1000:7.1f} ms")
        print(
            f"lms deliver      {d * 1000:7.1f} ms   = {d / p:4.1f}x python -c pass   (target <= 6x: "
            f"{'met' if d / p <= 6 else 'NOT met'})"
        )
        started = time.perf_counter()
        with ThreadPoolExecutor(args.parallel) as pool:
            list(pool.map(lambda _: timed(deliver, env, mail()), range(args.mails)))
        elapsed = time.perf_counter() - started
        print(
            f"{args.parallel} pipes at once: {args.mails / elapsed:6.1f} mails/s "
            f"({args.mails} mails in {elapsed:.1f}s)"
        )
    finally:
        if scratch:
            scratch.drop()


if __name__ == "__main__":
    main()
