"""Mails per second one IMAP poll takes from a private Dovecot (stored, ledger, flagged), for
this poller (sizes read first, bodies in chunks of at most 32 MiB, TLS optional) against the
poller before issue 17 (loaded from git), same mails, same run.

    .venv/bin/python bench/imap_poll.py [--mails 300] [--rounds 3] [--base 5bb5d7d] [--tls]

Needs Dovecot (the test setup installs it). Each round: a fresh SQLite database, the folder
filled again, one ``poll_once`` timed. Prints medians and the ratio new / old.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402
from sqlalchemy import select  # noqa: E402

from models.clock import system_clock  # noqa: E402
from models.config_apply import apply_config  # noqa: E402
from models.db import Database  # noqa: E402
from models.dealer_config import load_config_file  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.tables import Dealer  # noqa: E402
from tests.support.dovecot import PASSWORD, USER, Dovecot  # noqa: E402
from tests.support.mails import enquiry  # noqa: E402
from tests.support.tls import TestCA  # noqa: E402


def old_module(commit: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{commit}:intake/imap.py"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader("imap_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["imap_before"] = module  # dataclasses look their module up
    exec(compile(source, "imap_before.py", "exec"), module.__dict__)
    return module


def fill(dovecot: Dovecot, mails: list[bytes]) -> None:
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=30)
    client.login(USER, PASSWORD)
    if client.folder_exists("Bench"):
        client.delete_folder("Bench")
    client.create_folder("Bench")
    for raw in mails:
        client.append("Bench", raw)
    client.logout()


def one_round(module: types.ModuleType, dovecot: Dovecot, toml: str, mails: list[bytes], new: bool) -> float:
    fill(dovecot, mails)
    with tempfile.TemporaryDirectory() as tmp:
        # Beside the demo file, so its header image and exposé are found.
        config = ROOT / "examples" / f".bench-imap-{Path(tmp).name}.toml"
        config.write_text((ROOT / "examples" / "lms.toml").read_text() + toml)
        db = Database(f"sqlite:///{tmp}/bench.db")
        upgrade(db)
        with db.session() as session:
            apply_config(session, load_config_file(config), now=system_clock())
        config.unlink()
        with db.session() as session:
            dealers = list(session.scalars(select(Dealer)))
        [account] = module.accounts_from(dealers)
        extra = {"max_bytes": 26_214_400} if new else {}
        poller = module.ImapPoller(account, db, enqueue=None, **extra)
        client = poller.connect()
        started = time.perf_counter()
        taken = poller.poll_once(client)
        elapsed = time.perf_counter() - started
        client.logout()
        db.dispose()
    assert taken == len(mails), (taken, len(mails))
    return len(mails) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default="5bb5d7d")
    parser.add_argument("--tls", action="store_true", help="the new poller over implicit TLS as well")
    args = parser.parse_args()
    mails = [enquiry(subject=f"Anfrage {i}", body="Guten Tag,\n" + "Text " * 300) for i in range(args.mails)]
    import intake.imap as new_module

    old = old_module(args.base)
    with tempfile.TemporaryDirectory() as tmp:
        ca = TestCA(Path(tmp) / "ca")
        dovecot = Dovecot(tls=ca.issue("localhost", dns=("localhost",))).start()
        try:
            plain = dovecot.imap_toml(folder="Bench")
            tls = dovecot.imap_toml(folder="Bench", security="tls", host="localhost", ca_file=ca.ca_file)
            runs: dict[str, list[float]] = {"before (plain)": [], "now (plain)": [], "now (tls)": []}
            for _ in range(args.rounds):  # interleaved, so load on the machine hits both alike
                runs["before (plain)"].append(one_round(old, dovecot, plain, mails, new=False))
                runs["now (plain)"].append(one_round(new_module, dovecot, plain, mails, new=True))
                if args.tls:
                    runs["now (tls)"].append(one_round(new_module, dovecot, tls, mails, new=True))
        finally:
            dovecot.cleanup()
    medians = {name: statistics.median(values) for name, values in runs.items() if values}
    for name, value in medians.items():
        print(f"{name:15s} {value:8.1f} mails/s  (median of {args.rounds}, {args.mails} mails of ~2 KB)")
    base = medians["before (plain)"]
    for name, value in medians.items():
        print(f"ratio {name} / before (plain): {value / base:.2f}")


if __name__ == "__main__":
    main()
