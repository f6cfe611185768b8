"""IMAP over TLS for real: a private Dovecot with a certificate from a CA the test makes.

Implicit TLS and STARTTLS take mail when the certificate is trusted (``ca_file``) and the
host name matches; an untrusted certificate, a wrong host name, and a man in the middle who
removes or refuses STARTTLS each stop the poller before it sends a credential, with the
reason in ``lms ops status``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from intake.imap import OUR_KEYWORD
from lms.cli import main
from tests.support.dovecot import PASSWORD, Dovecot
from tests.support.imap_cases import imap_status, logins, make_stack, poller, stored
from tests.support.mails import enquiry
from tests.support.services import wait_until
from tests.support.starttls_strip import StarttlsStripper
from tests.support.tls import TestCA

KEYWORD = OUR_KEYWORD.encode()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def dovecot(ca: TestCA) -> Iterator[Dovecot]:
    """One TLS Dovecot for the module: the tests use separate folders, so they share it."""
    server = Dovecot(tls=ca.issue("localhost", dns=("localhost",))).start()
    yield server
    server.cleanup()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_mail_is_taken_over_verified_tls_with_a_private_ca(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot, ca: TestCA, security: str
) -> None:
    folder = f"Tls{security}"
    dovecot.append(enquiry(subject=f"über {security}"), folder=folder)
    before = len(logins(dovecot))
    stack = make_stack(
        tmp_path,
        sqlite_url,
        dovecot.imap_toml(security=security, host="localhost", ca_file=ca.ca_file, folder=folder),
    )
    try:
        imap = poller(stack)
        imap.start()
        try:
            wait_until(lambda: len(stored(stack)) == 1, what=f"the mail over {security}")
            wait_until(lambda: all(KEYWORD in f for f in dovecot.folder(folder).values()), what="the flag")
        finally:
            imap.stop()
        status = imap_status(stack)
        assert status["error_kind"] is None and status["last_error"] is None and status["taken"] == 1
    finally:
        stack.close()
    # Dovecot says a session logged in encrypted ("TLS" in its login line): the poller's, the
    # test's own helper client speaks clear text on loopback.
    assert any(", TLS" in line for line in logins(dovecot)[before:]), logins(dovecot)[before:]


@pytest.mark.parametrize(
    ("host", "with_ca", "expected"),
    [
        ("localhost", False, "unable to get local issuer certificate"),  # not in the system store
        ("127.0.0.1", True, "mismatch"),  # the certificate names localhost only
    ],
    ids=["untrusted-certificate", "wrong-host-name"],
)
@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_certificate_that_does_not_verify_stops_the_poller_with_the_reason_in_ops_status(
    sqlite_url: str,
    tmp_path: Path,
    dovecot: Dovecot,
    ca: TestCA,
    security: str,
    host: str,
    with_ca: bool,
    expected: str,
) -> None:
    folder = f"Bad{security}{host.replace('.', '')}{with_ca}"
    dovecot.append(enquiry(subject="bleibt liegen"), folder=folder)
    before = len(logins(dovecot))
    stack = make_stack(
        tmp_path,
        sqlite_url,
        dovecot.imap_toml(
            security=security, host=host, ca_file=ca.ca_file if with_ca else None, folder=folder
        ),
    )
    try:
        imap = poller(stack)
        imap.start()
        try:
            status = wait_until(lambda: imap_status(stack).get("error_kind") and imap_status(stack))
        finally:
            imap.stop()
        assert isinstance(status, dict)
        assert status["error_kind"] == "tls" and status["connected"] is False
        assert expected in status["last_error"] and "certificate" in status["last_error"]
        assert status["failing_since"] is not None
        assert stored(stack) == []
        assert logins(dovecot)[before:] == []  # the poller never logged in
    finally:
        stack.close()
    assert all(KEYWORD not in flags for flags in dovecot.folder(folder).values())
    human = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url}).invoke(main, ["ops", "status"])
    assert "FAILING (tls)" in human.output


@pytest.mark.parametrize("mode", ["strip", "refuse"])
def test_starttls_removed_by_a_man_in_the_middle_never_sends_the_password_in_clear(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot, ca: TestCA, mode: str
) -> None:
    folder = f"Mitm{mode}"
    dovecot.append(enquiry(subject="abgefangen"), folder=folder)
    proxy = StarttlsStripper(dovecot.port, mode=mode)
    stack = make_stack(
        tmp_path,
        sqlite_url,
        dovecot.imap_toml(
            security="starttls", host="localhost", port=proxy.port, ca_file=ca.ca_file, folder=folder
        ),
    )
    try:
        imap = poller(stack)
        imap.start()
        try:
            status = wait_until(lambda: imap_status(stack).get("error_kind") and imap_status(stack))
            wait_until(lambda: proxy.connections >= 2, what="a second attempt after the backoff")
        finally:
            imap.stop()
        assert isinstance(status, dict)
        assert status["error_kind"] == "tls" and "STARTTLS" in status["last_error"]
        assert "without TLS" in status["last_error"]
        sent = proxy.client_sent().upper()
        assert b"LOGIN" not in sent and b"AUTHENTICATE" not in sent and PASSWORD.encode() not in sent
        assert stored(stack) == []
    finally:
        proxy.close()
        stack.close()
