"""Our own commands as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from click.testing import Result

ROOT = Path(__file__).resolve().parents[2]


def lms_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env.update({f"LMS_{k.upper()}": v for k, v in settings.items()})
    # Metrics on, as in production, but in a directory of this test's own: tests run on two
    # workers, and the default (var/metrics of the working directory) would be shared.
    env.setdefault("LMS_METRICS_DIR", tempfile.mkdtemp(prefix="lms-metrics-"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def lms_here(*args: str, env: dict[str, str], input: bytes | None = None) -> Result:
    """The same command in the test's process (click's runner, the ``LMS_*`` settings of ``env``):
    for preparing what a test needs, where starting a Python process adds a second and tells
    nothing (what runs as a process is tested as one)."""
    from click.testing import CliRunner

    from lms.cli import main

    # As lms_env does for a process: only the given LMS_* settings, none of the test run's own.
    settings: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LMS_")}
    settings.update({k: v for k, v in env.items() if k.startswith("LMS_")})
    return CliRunner(env=settings).invoke(main, list(args), input=input)


def lms(
    *args: str, env: dict[str, str], cwd: Path | None = None, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "lms", *args],
        env=env,
        cwd=cwd or ROOT,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


class LmsProcess:
    def __init__(self, *args: str, env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lms", *args],
            env=env,
            cwd=cwd or ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found
