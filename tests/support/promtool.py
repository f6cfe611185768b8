"""``promtool`` (Debian's ``prometheus`` package) for checking deploy/prometheus.

Found on the PATH, or taken out of the Debian package without installing it: ``apt-get
download`` and ``dpkg-deb -x`` into a cache directory. Installing the package would also start
a Prometheus server (and, with its recommends, a node exporter) on the machine; the tests need
only the checker. As with Dovecot: with ``CI`` set, a missing promtool fails, never skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CACHE = Path(tempfile.gettempdir()) / "lms-tests-promtool"


def ensure_promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    cached = CACHE / "usr" / "bin" / "promtool"
    if cached.exists():
        return str(cached)
    problem = "promtool is not installed (Debian package prometheus)"
    if shutil.which("apt-get") and shutil.which("dpkg-deb"):
        problem = _extract(cached) or ""
        if not problem:
            return str(cached)
    if os.environ.get("CI"):
        pytest.fail(problem + " (CI is set: a check never skips)")
    pytest.skip(problem)


def _extract(target: Path) -> str | None:
    """The package's files into a fresh directory, moved into place whole (another test run
    may do the same at the same time); the reason when that failed."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE.parent) as work:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        download = ["apt-get", "download", "-q", "prometheus"]
        result = subprocess.run(download, cwd=work, env=env, capture_output=True, timeout=600)
        if result.returncode != 0 and os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            result = subprocess.run(download, cwd=work, env=env, capture_output=True, timeout=600)
        debs = list(Path(work).glob("prometheus_*.deb"))
        if result.returncode != 0 or not debs:
            return f"apt-get download prometheus failed: {result.stderr.decode()[-500:]}"
        unpacked = Path(work) / "root"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True, timeout=300)
        try:
            unpacked.rename(CACHE)
        except OSError:
            if not target.exists():  # not another run's copy: a real failure
                raise
    return None if target.exists() else "the prometheus package holds no usr/bin/promtool"
