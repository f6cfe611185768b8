"""Debian's Chromium for the browser tests, installed with apt-get when missing (as root), the
way the IMAP tests install Dovecot; Playwright drives it (its own browser download cannot
work here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home, and the closed network
# here refuses it many times a start.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def ensure_chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    problem = "chromium is not installed"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            result = subprocess.run(install, env=env, capture_output=True, timeout=900)
            problem = f"apt-get install chromium failed: {result.stderr.decode()[-500:]}"
        if Path(CHROMIUM).exists():
            return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(problem + " (CI is set: a browser test never skips)")
    pytest.skip(problem)
