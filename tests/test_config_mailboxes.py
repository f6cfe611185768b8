"""The mailbox settings of the dealer file: TLS, OAuth2, what is refused, what is masked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lms.cli import main
from models.clock import system_clock
from models.db import Database
from models.migrate import upgrade
from models.secret_box import SecretBox, SecretKeyError
from tests.support.imap_cases import SECRET_KEY, make_stack
from tests.support.oauth_server import OAuthServer
from tests.support.stack import DEMO_CONFIG
from workers.mailbox_connect import ConnectError, start_device

GOOD = DEMO_CONFIG.read_text()
OAUTH = '\n[dealers.imap.oauth]\nprovider = "microsoft"\nclient_id = "11111111-2222"\n'


@pytest.fixture
def cli(sqlite_url: str) -> CliRunner:
    upgrade(Database(sqlite_url))
    return CliRunner(env={"LMS_DATABASE_URL": sqlite_url})


def write(tmp_path: Path, imap: str) -> str:
    for asset in ("header.png", "expose.pdf"):
        shutil.copy(DEMO_CONFIG.parent / asset, tmp_path / asset)
    path = tmp_path / "dealer.toml"
    path.write_text(GOOD + "\n[[dealers.imap]]\n" + imap)
    return str(path)


@pytest.mark.parametrize(
    ("imap", "key", "reason"),
    [
        (
            'host = "imap.example.com"\nsecurity = "none"\nuser = "a"\npassword = "p"\n',
            "dealers[0].imap[0]",
            "security = \"none\" sends the password in clear: refused for 'imap.example.com'",
        ),
        (
            'host = "h.example"\nuser = "a"\nauth = "xoauth2"\n',
            "dealers[0].imap[0]",
            "needs an [oauth] table",
        ),
        (
            'host = "h.example"\nuser = "a"\nauth = "xoauth2"\npassword = "p"\n' + OAUTH,
            "dealers[0].imap[0]",
            "takes no password",
        ),
        ('host = "h.example"\nuser = "a"\npassword = "p"\n' + OAUTH, "dealers[0].imap[0]", "needs auth"),
        (
            'host = "h.example"\nuser = "a"\nauth = "xoauth2"\n'
            '[dealers.imap.oauth]\nprovider = "generic"\nclient_id = "c"\n',
            "dealers[0].imap[0].oauth",
            "needs 'token_endpoint'",
        ),
        (
            'host = "h.example"\nuser = "a"\nauth = "xoauth2"\n[dealers.imap.oauth]\nprovider = "google"\n'
            'client_id = "c"\ntoken_endpoint = "http://idp.example/token"\n',
            "dealers[0].imap[0].oauth",
            "must be an https:// URL",
        ),
        (
            'host = "h.example"\nuser = "a"\npassword = "p"\nca_file = "no-such-ca.pem"\n',
            "dealers[0].imap[0].ca_file",
            "cannot read",
        ),
    ],
    ids=[
        "clear-text-to-the-internet",
        "no-oauth",
        "oauth-and-password",
        "oauth-without-xoauth2",
        "generic-without-endpoint",
        "token-endpoint-in-clear",
        "missing-ca-file",
    ],
)
def test_unsafe_or_incomplete_mailbox_settings_are_refused_with_key_and_reason(
    cli: CliRunner, tmp_path: Path, imap: str, key: str, reason: str
) -> None:
    result = cli.invoke(main, ["config", "check", write(tmp_path, imap)])
    assert result.exit_code != 0
    assert f"{key}: " in result.output and reason in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_clear_text_is_allowed_on_loopback_only(cli: CliRunner, tmp_path: Path, host: str) -> None:
    imap = f'host = "{host}"\nsecurity = "none"\nuser = "a"\npassword = "p"\n'
    result = cli.invoke(main, ["config", "check", write(tmp_path, imap)])
    assert result.exit_code == 0, result.output


def test_oauth_client_secrets_and_passwords_are_never_shown(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not checked here beyond being readable\n")
    imap = (
        'host = "outlook.office365.com"\nuser = "leads@autohaus.example"\nauth = "xoauth2"\n'
        'ca_file = "ca.pem"\n[dealers.imap.oauth]\nprovider = "google"\nclient_id = "c.apps"\n'
        'client_secret = "GOCSPX-very-secret"\n'
        '\n[[dealers.imap]]\nhost = "imap.example.com"\nuser = "b"\npassword = "s3cret-Pa55"\n'
    )
    assert cli.invoke(main, ["config", "apply", write(tmp_path, imap)]).exit_code == 0
    for args in (["config", "show", "--json"], ["config", "show"]):
        output = cli.invoke(main, args).output
        assert "GOCSPX-very-secret" not in output and "s3cret-Pa55" not in output
    shown = json.loads(cli.invoke(main, ["config", "show", "--json"]).stdout)["dealers"][0]["imap"]
    assert shown[0]["oauth"]["client_secret"] == "********" and shown[1]["password"] == "********"
    assert shown[0]["ca_file"] == str((tmp_path / "ca.pem").resolve())  # relative to the file


def test_the_secret_box_refuses_a_missing_short_or_wrong_key_and_rotates() -> None:
    with pytest.raises(SecretKeyError, match="LMS_SECRET_KEY is not set"):
        SecretBox(None)
    with pytest.raises(SecretKeyError, match="too short"):
        SecretBox("short")
    old = SecretBox("old-key-0123456789abcdef")
    sealed = old.seal("rt-refresh-token")
    assert "rt-refresh-token" not in sealed
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        SecretBox("another-key-0123456789ab").open(sealed)
    rotated = SecretBox("new-key-0123456789abcdef old-key-0123456789abcdef")
    assert rotated.open(sealed) == "rt-refresh-token"  # the old key still opens
    assert SecretBox("new-key-0123456789abcdef").open(rotated.seal("x")) == "x"  # the new one seals


def test_google_refusing_gmail_in_the_device_flow_points_to_the_authorization_code_flow(
    sqlite_url: str, tmp_path: Path, oauth: OAuthServer
) -> None:
    oauth.state.device_error = "invalid_scope"  # what Google answers for https://mail.google.com/
    google = oauth.oauth_toml(provider="google", secret_env="LMS_TEST_GOOGLE_SECRET")
    mailbox = '\n[[dealers.imap]]\nhost = "127.0.0.1"\nsecurity = "none"\nuser = "leads"\nauth = "xoauth2"\n'
    stack = make_stack(tmp_path, sqlite_url, mailbox + google, secret_key=SECRET_KEY)
    try:
        with pytest.raises(ConnectError, match="is empty"):  # the client secret's variable
            start_device(stack.db, "muster", "leads", secret_key=SECRET_KEY, now=system_clock(), environ={})
        env = {"LMS_TEST_GOOGLE_SECRET": "GOCSPX-x"}
        with pytest.raises(ConnectError, match="--auth-code"):
            start_device(stack.db, "muster", "leads", secret_key=SECRET_KEY, now=system_clock(), environ=env)
    finally:
        stack.close()
