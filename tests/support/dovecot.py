"""A private Dovecot IMAP server on loopback, from Debian's packages, for the IMAP tests.

Installed with apt-get when missing (CI runs as root). Each instance has its own
configuration, mail location and sockets in a throw-away directory and listens on a free
port; the machine's own services are never touched.

With ``tls`` (a certificate from tests/support/tls.py) it offers STARTTLS on ``port`` and
implicit TLS on ``tls_port``; with ``oauth_introspection_url`` it takes XOAUTH2 and
OAUTHBEARER and checks each token at that URL (Dovecot 2.3's oauth2 passdb, introspection by
POST), while passwords keep working for the test's own client.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.support.processes import child_pids
from tests.support.services import free_port, reachable
from tests.support.tls import ServerCert

USER, PASSWORD = "leads", "s3cret"
NOBODY = 65534  # Dovecot refuses to run mail processes as root


def ensure_dovecot() -> str:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if found:
        return found
    problem = "dovecot is not installed"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "dovecot-imapd"]
        if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            result = subprocess.run(install, env=env, capture_output=True, timeout=600)
            problem = f"apt-get install dovecot-imapd failed: {result.stderr.decode()[-500:]}"
        found = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
        )
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail(problem + " (CI is set: a service test never skips)")
    pytest.skip(problem)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap the daemonised master)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


class Dovecot:
    def __init__(self, *, tls: ServerCert | None = None, oauth_introspection_url: str | None = None) -> None:
        self.binary = ensure_dovecot()
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        # Not under pytest's 0700 tmp: the unprivileged mail processes must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="lms-dovecot-"))
        self.dir.chmod(0o755)
        for sub in ("mail", "run", "state"):
            (self.dir / sub).mkdir()
        os.chown(self.dir / "mail", NOBODY, NOBODY)
        (self.dir / "users").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{NOBODY}:{NOBODY}::{self.dir}/mail/{USER}::\n"
        )
        self.conf = self.dir / "dovecot.conf"
        mechanisms = "plain login"
        oauth_passdb = ""
        if oauth_introspection_url:
            mechanisms += " xoauth2 oauthbearer"
            (self.dir / "oauth2.conf.ext").write_text(
                f"introspection_mode = post\nintrospection_url = {oauth_introspection_url}\n"
                "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
                "force_introspection = yes\ntimeout_msecs = 5000\n"
            )
            oauth_passdb = f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {self.dir}/oauth2.conf.ext
}}"""
        ssl = (
            f"ssl = yes\nssl_cert = <{tls.cert_file}\nssl_key = <{tls.key_file}\nssl_min_protocol = TLSv1.2"
            if tls
            else "ssl = no"
        )
        self.conf.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = maildir:{self.dir}/mail/%u
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {self.dir}/users
}}{oauth_passdb}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.dir}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
""")

    def start(self) -> Dovecot:
        # The master daemonises: it must not hold pipes of ours open (run() would wait for EOF).
        with open(self.dir / "start.log", "ab") as out:
            subprocess.run(
                [self.binary, "-c", str(self.conf)],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                timeout=30,
            )
        deadline = time.monotonic() + 15
        while not reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {(self.dir / 'dovecot.log').read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def _master(self) -> int | None:
        pid_file = self.dir / "run" / "master.pid"
        return int(pid_file.read_text().strip()) if pid_file.exists() else None

    def _is_ours(self, pid: int) -> bool:
        """The pid file's process is still this instance's master (not a reused pid)."""
        try:
            return str(self.conf).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def stop(self) -> None:
        """Stop as ``dovecot stop`` does (SIGTERM to the master), and wait until the master has
        exited, not just until the port is closed: a start while the old master still runs
        fails with "already running". Signalled here rather than through ``dovecot stop``, whose
        own wait for the master polls in steps of a second or so."""
        pid = self._master()
        if pid is not None and self._is_ours(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        else:
            pid = None
        self._wait_gone(pid, [])

    def _wait_gone(self, pid: int | None, children: list[int]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = (pid is not None and _running(pid)) or any(_running(child) for child in children)
            if not alive and not reachable("127.0.0.1", self.port):
                return
            time.sleep(0.02)
        raise RuntimeError(f"dovecot (pid {pid}) did not stop within 30s")

    def cleanup(self) -> None:
        """Throw the instance away: its master and every process of it killed at once (nothing
        of it is looked at any more, so there is nothing to shut down gracefully)."""
        pid = self._master()
        children: list[int] = []
        if pid is not None and _running(pid) and self._is_ours(pid):
            os.kill(pid, signal.SIGSTOP)  # it forks nothing more while its children are listed
            children = child_pids(pid)
            for each in [pid, *children]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(each, signal.SIGKILL)
        self._wait_gone(pid, children)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def append(self, raw: bytes, *, folder: str = "INBOX", seen: bool = False) -> None:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=[b"\\Seen"] if seen else [])
        finally:
            client.logout()

    def empty(self, folder: str = "INBOX") -> None:
        """Remove every mail of a folder (tests sharing one server start from nothing)."""
        client = self.client()
        try:
            if client.folder_exists(folder):
                client.select_folder(folder)
                uids = client.search(["ALL"])
                if uids:
                    client.delete_messages(uids)
                    client.expunge()
        finally:
            client.logout()

    def log_text(self) -> str:
        return (self.dir / "dovecot.log").read_text()

    def folder(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """UID → flags of the mails in a folder."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return {}
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            return (
                {uid: data[b"FLAGS"] for uid, data in client.fetch(uids, ["FLAGS"]).items()} if uids else {}
            )
        finally:
            client.logout()

    def imap_toml(
        self,
        *,
        folder: str = "INBOX",
        after: str = "flag",
        password_env: str | None = None,
        security: str = "none",
        host: str = "127.0.0.1",
        port: int | None = None,
        ca_file: Path | None = None,
        oauth_toml: str | None = None,
    ) -> str:
        if oauth_toml:
            secret = 'auth = "xoauth2"'
        else:
            secret = f'password_env = "{password_env}"' if password_env else f'password = "{PASSWORD}"'
        move = '\nmove_to = "Processed"' if after == "move" else ""
        if port is None:
            port = self.tls_port if security == "tls" else self.port
        ca = f'\nca_file = "{ca_file}"' if ca_file else ""
        return (
            f'\n[[dealers.imap]]\nhost = "{host}"\nport = {port}\nsecurity = "{security}"{ca}\n'
            f'user = "{USER}"\n{secret}\nfolder = "{folder}"\nafter = "{after}"{move}\n' + (oauth_toml or "")
        )
