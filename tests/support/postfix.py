"""A private Postfix instance on loopback, relaying one domain to our LMTP intake.

Installed from Debian's package when missing (as root; the package's own instance is not
configured and not started: "No configuration", and containers deny service starts). Each
instance has its own configuration, queue and log directories and a free SMTP port; it is
stopped and removed afterwards. Nothing of the machine's mail setup is used or changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.services import free_port

MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test.example
mydomain = test.example
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains = {domain}
transport_maps = inline:{{ {domain}=lmtp:{lmtp} }}
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtputf8_enable = no
"""


def ensure_postfix() -> str:
    found = shutil.which("postfix") or ("/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists() else None)
    if found:
        return found
    problem = "postfix is not installed"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["debconf-set-selections"],
            input=b"postfix postfix/main_mailer_type select No configuration\n",
            capture_output=True,
            check=False,
        )
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"]
        if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            result = subprocess.run(install, env=env, capture_output=True, timeout=600)
            problem = f"apt-get install postfix failed: {result.stderr.decode()[-500:]}"
        found = shutil.which("postfix") or (
            "/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists() else None
        )
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail(problem + " (CI is set: a service test never skips)")
    pytest.skip(problem)


class PrivatePostfix:
    def __init__(self, *, domain: str, lmtp: str) -> None:
        if os.geteuid() != 0:
            pytest.skip("a private Postfix instance needs root (its queue is owned by root and postfix)")
        self.postfix = ensure_postfix()
        self.root = Path(tempfile.mkdtemp(prefix="lms-postfix-"))
        os.chmod(self.root, 0o755)
        self.config = self.root / "etc"
        self.config.mkdir()
        self.port = free_port()
        (self.config / "main.cf").write_text(MAIN_CF.format(root=self.root, domain=domain, lmtp=lmtp))
        (self.config / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        for name in ("spool", "data"):
            (self.root / name).mkdir()
        shutil.chown(self.root / "data", "postfix")
        try:
            self._postfix("set-permissions")
            self._postfix("start")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _postfix(self, *args: str) -> None:
        result = subprocess.run(
            [self.postfix, "-c", str(self.config), *args], capture_output=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)}: {result.stderr.decode()[-1500:]}\n{self.log()}")

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        try:
            self._postfix("stop")
        except RuntimeError:
            subprocess.run([self.postfix, "-c", str(self.config), "abort"], capture_output=True, check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
