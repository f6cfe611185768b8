"""A private PostgreSQL server on a free port, for outage tests that must not touch the
machine's own server: started with initdb + pg_ctl, frozen with SIGSTOP, thawed, removed."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import child_pids
from tests.support.services import free_port


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class PrivatePostgres:
    def __init__(self) -> None:
        initdb = shutil.which("initdb")
        if initdb is None:
            pytest.fail("initdb not found: the PostgreSQL server package is needed for this test")
        self.bin = Path(initdb).parent
        self.root = Path(tempfile.mkdtemp(prefix="lms-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.data = self.root / "data"
        self.port = free_port()
        subprocess.run(
            _as_postgres(
                [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def children(self) -> list[int]:
        return child_pids(self.postmaster())

    def freeze(self) -> None:
        """Stop the postmaster first (so it forks nothing new), then every backend."""
        _signal(self.postmaster(), signal.SIGSTOP)
        for pid in self.children():
            _signal(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.children():
            _signal(pid, signal.SIGCONT)
        _signal(self.postmaster(), signal.SIGCONT)

    def stop(self) -> None:
        try:
            self.thaw()
        finally:
            subprocess.run(
                _as_postgres(
                    [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
                check=False,
            )
            shutil.rmtree(self.root, ignore_errors=True)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # a backend that ended meanwhile
        os.kill(pid, signum)
