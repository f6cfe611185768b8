"""OAuth2 mailboxes against a private Dovecot whose oauth2 passdb asks a local OAuth2 server
(the test's, standing in for Microsoft or Google) whether a token is valid.

Connected through the device-code flow (the real ``lms imap connect`` process) or the
authorization-code flow with PKCE; read with XOAUTH2; tokens refreshed before they expire and
once when the server refuses one; a revoked grant reported, and nothing lost once the
mailbox is connected again.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from intake.imap import OUR_KEYWORD
from intake.oauth import refresh as real_refresh
from intake.oauth_tokens import AccessTokens
from models.clock import system_clock
from models.health import Thresholds
from models.health_facts import health_verdict
from models.mailbox_tables import OAuthPending, OAuthToken
from models.secret_box import SecretBox
from models.token_store import load_token, save_refreshed
from tests.support.dovecot import Dovecot
from tests.support.imap_cases import (
    SECRET_KEY,
    imap_status,
    make_stack,
    ops_status,
    poller,
    stored,
    subjects,
)
from tests.support.mails import enquiry
from tests.support.oauth_server import OAuthServer
from tests.support.processes import ROOT, LmsProcess, lms_env, lms_here
from tests.support.services import wait_until
from tests.support.stack import Stack
from workers.mailbox_connect import (
    Connected,
    ConnectError,
    finish_authorization,
    oauth_mailboxes_state,
    parse_redirect,
    poll_device,
    start_authorization,
    start_device,
)

KEYWORD = OUR_KEYWORD.encode()


@pytest.fixture(scope="module")
def shared_oauth() -> Iterator[OAuthServer]:
    server = OAuthServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_dovecot(shared_oauth: OAuthServer) -> Iterator[Dovecot]:
    """One Dovecot for the module (starting and stopping one takes seconds); each test
    starts with an empty INBOX and an OAuth2 server that knows no token."""
    server = Dovecot(oauth_introspection_url=f"{shared_oauth.url}/introspect").start()
    yield server
    server.cleanup()


@pytest.fixture
def oauth(shared_oauth: OAuthServer) -> OAuthServer:
    shared_oauth.reset()
    return shared_oauth


@pytest.fixture
def dovecot(shared_dovecot: Dovecot, oauth: OAuthServer) -> Dovecot:
    shared_dovecot.empty()
    return shared_dovecot


@pytest.fixture
def stack(sqlite_url: str, tmp_path: Path, dovecot: Dovecot, oauth: OAuthServer) -> Iterator[Stack]:
    made = make_stack(
        tmp_path, sqlite_url, dovecot.imap_toml(oauth_toml=oauth.oauth_toml()), secret_key=SECRET_KEY
    )
    yield made
    made.close()


def connect(stack: Stack, oauth: OAuthServer) -> Connected:
    """What the admin page does with the device flow: show the code, poll until signed in."""
    started = start_device(stack.db, "muster", "leads", secret_key=SECRET_KEY, now=system_clock())
    waiting = poll_device(stack.db, started, secret_key=SECRET_KEY, now=system_clock())
    assert not isinstance(waiting, Connected)  # nobody signed in yet
    oauth.approve(started.user_code)
    done = poll_device(stack.db, started, secret_key=SECRET_KEY, now=system_clock())
    assert isinstance(done, Connected)
    return done


def test_lms_imap_connect_runs_the_device_flow_and_stores_the_tokens_encrypted(
    stack: Stack, oauth: OAuthServer, tmp_path: Path
) -> None:
    env = lms_env(database_url=stack.settings.database_url, secret_key=SECRET_KEY)
    process = LmsProcess("imap", "connect", "muster", "leads", env=env, log=tmp_path / "connect.log")
    try:
        [code] = wait_until(oauth.pending_user_codes, what="the device code requested")  # type: ignore[misc]
        wait_until(lambda: code in process.log(), what="the code shown to the person")
        assert f"{oauth.url}/device" in process.log()
        oauth.approve(code)
        assert process.proc.wait(timeout=30) == 0, process.log()
    finally:
        process.stop()
    assert "connected: leads of muster" in process.log()
    [refresh_token] = oauth.refresh_tokens()
    with stack.db.session() as session:
        row = session.get(OAuthToken, ("muster", "leads"))
        assert row is not None and row.state == "connected"
        raw_rows = " ".join(str(v) for v in session.execute(text("SELECT * FROM oauth_tokens")).one())
        token = load_token(session, SecretBox(SECRET_KEY), "muster", "leads")
    assert refresh_token not in raw_rows and refresh_token not in process.log()  # sealed, never printed
    assert token is not None and token.refresh_token == refresh_token
    grant = ops_status(stack)["oauth"][0]
    assert grant["state"] == "connected" and grant["user"] == "leads"
    assert refresh_token not in str(ops_status(stack))


def test_mail_is_read_with_xoauth2_and_the_token_refreshed_before_it_expires_losing_and_doubling_nothing(
    stack: Stack, dovecot: Dovecot, oauth: OAuthServer
) -> None:
    oauth.state.access_lifetime = 3  # a real provider says 3600; the rules scale with it
    log_start = len(dovecot.log_text())
    connect(stack, oauth)
    imap = poller(stack)
    imap.start()
    try:
        dovecot.append(enquiry(subject="eins"))
        wait_until(lambda: len(stored(stack)) == 1, what="the first mail")
        first_refresh = oauth.refresh_tokens()
        # The session ends before the token is due; the next one logs in with a refreshed
        # token, and the provider's rotated refresh token replaced the stored one (or the
        # second refresh, made with it, would be refused).
        wait_until(lambda: oauth.count("grant:refresh_token") >= 1, what="a refresh")
        dovecot.append(enquiry(subject="zwei"))
        wait_until(lambda: oauth.count("grant:refresh_token") >= 2, timeout=30, what="a second refresh")
        dovecot.append(enquiry(subject="drei"))
        wait_until(lambda: len(stored(stack)) == 3, what="all three mails")
        wait_until(lambda: all(KEYWORD in f for f in dovecot.folder().values()), what="all flagged")
    finally:
        imap.stop()
    assert subjects(stack) == [b"drei", b"eins", b"zwei"]
    assert oauth.refresh_tokens() != first_refresh  # rotated, and the rotation was kept
    # Every token Dovecot was shown was valid: refreshed before expiry, not after a failure.
    assert oauth.state.introspected and all(active for _, active in oauth.state.introspected)
    assert "auth failed" not in dovecot.log_text()[log_start:]
    status = imap_status(stack)
    assert status["taken"] == 3 and status["error_kind"] is None


def test_a_token_the_server_refuses_is_refreshed_once_and_the_login_retried(
    stack: Stack, dovecot: Dovecot, oauth: OAuthServer
) -> None:
    connect(stack, oauth)
    oauth.expire_access_tokens()  # revoked early at the provider; our copy still looks valid
    dovecot.append(enquiry(subject="trotzdem"))
    imap = poller(stack)
    imap.start()
    try:
        wait_until(lambda: len(stored(stack)) == 1, what="the mail after one refresh")
    finally:
        imap.stop()
    assert oauth.count("grant:refresh_token") == 1
    assert [active for _, active in oauth.state.introspected][:2] == [False, True]
    assert imap_status(stack)["last_error"] is None  # it never even counted as a failure


def test_a_revoked_grant_is_reported_and_nothing_is_lost_once_the_mailbox_is_connected_again(
    stack: Stack, dovecot: Dovecot, oauth: OAuthServer
) -> None:
    connect(stack, oauth)
    oauth.revoke_refresh_tokens()  # the admin revoked the app, or the password changed
    oauth.expire_access_tokens()
    dovecot.append(enquiry(subject="im Ausfall"))
    imap = poller(stack)
    imap.start()
    try:
        status = wait_until(lambda: imap_status(stack).get("error_kind") and imap_status(stack))
        assert isinstance(status, dict)
        assert status["error_kind"] == "oauth" and "lms imap connect muster leads" in status["last_error"]
        grant = ops_status(stack)["oauth"][0]
        assert grant["state"] == "refused" and "invalid_grant" in grant["last_error"]
        assert oauth.count("grant:refresh_token") == 1
        with stack.db.read() as session:  # the health verdict says who must do what
            verdict = health_verdict(session, now=system_clock(), limits=Thresholds())
        [refused] = [i for i in verdict.issues if i.check == "oauth_refused"]
        assert refused.severity == "critical" and "lms imap connect muster leads" in refused.message
        assert stored(stack) == [] and all(KEYWORD not in f for f in dovecot.folder().values())
        dovecot.append(enquiry(subject="auch noch"))
        connect(stack, oauth)  # a person connects the mailbox again
        wait_until(lambda: len(stored(stack)) == 2, timeout=30, what="both mails after reconnecting")
        wait_until(lambda: all(KEYWORD in f for f in dovecot.folder().values()), what="both flagged")
    finally:
        imap.stop()
    assert subjects(stack) == [b"auch noch", b"im Ausfall"]
    # A refused grant is not asked again and again: one refresh before, none while refused.
    assert oauth.count("grant:refresh_token") == 1
    assert imap_status(stack)["error_kind"] is None
    assert ops_status(stack)["oauth"][0]["state"] == "connected"


def test_the_authorization_code_flow_with_pkce_as_the_web_page_would_call_it(
    stack: Stack, dovecot: Dovecot, oauth: OAuthServer
) -> None:
    with stack.db.read() as session:  # not connected yet: the health verdict says so
        verdict = health_verdict(session, now=system_clock(), limits=Thresholds())
    assert "oauth_not_connected" in {i.check for i in verdict.issues}
    [offered] = oauth_mailboxes_state(stack.db)  # what the page lists
    assert (offered.dealer_id, offered.user, offered.state) == ("muster", "leads", "not_connected")
    callback = "https://lms.example/admin/mailboxes/callback"
    started = start_authorization(
        stack.db, "muster", "leads", secret_key=SECRET_KEY, now=system_clock(), redirect_uri=callback
    )
    assert "code_challenge_method=S256" in started.url and "login_hint=leads" in started.url
    redirected = oauth.visit(started.url)
    assert redirected.startswith(callback)
    code, state = parse_redirect(redirected)
    assert state == started.state
    with pytest.raises(ConnectError, match="unknown or already used state"):
        finish_authorization(stack.db, state="forged", code=code, secret_key=SECRET_KEY, now=system_clock())
    done = finish_authorization(stack.db, state=state, code=code, secret_key=SECRET_KEY, now=system_clock())
    assert done.user == "leads" and done.dealer_id == "muster"
    with pytest.raises(ConnectError, match="already used"):  # a state is good for one sign-in
        finish_authorization(stack.db, state=state, code=code, secret_key=SECRET_KEY, now=system_clock())
    with stack.db.session() as session:
        assert list(session.scalars(select(OAuthPending))) == []
    assert [m.state for m in oauth_mailboxes_state(stack.db, "muster")] == ["connected"]
    dovecot.append(enquiry(subject="per Code verbunden"))
    imap = poller(stack)
    imap.start()
    try:
        wait_until(lambda: len(stored(stack)) == 1, what="the mail")
    finally:
        imap.stop()


def test_an_authorization_left_too_long_is_refused(stack: Stack, oauth: OAuthServer) -> None:
    started = start_authorization(stack.db, "muster", "leads", secret_key=SECRET_KEY, now=system_clock())
    code, _ = parse_redirect(oauth.visit(started.url))
    late = system_clock() + timedelta(minutes=16)
    with pytest.raises(ConnectError, match="too long"):
        finish_authorization(stack.db, state=started.state, code=code, secret_key=SECRET_KEY, now=late)
    assert oauth.refresh_tokens() == []


def test_lms_imap_connect_with_auth_code_takes_the_pasted_redirect_address(
    stack: Stack, oauth: OAuthServer
) -> None:
    env = lms_env(database_url=stack.settings.database_url, secret_key=SECRET_KEY)
    process = subprocess.Popen(
        [sys.executable, "-m", "lms", "imap", "connect", "muster", "leads", "--auth-code"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        url = ""
        while not url:
            line = process.stdout.readline()
            assert line, "the command ended without showing the address"
            if line.strip().startswith(oauth.url):
                url = line.strip()
        redirected = oauth.visit(url)  # the browser lands on http://localhost?code=…: nothing answers
        assert redirected.startswith("http://localhost?code=")
        output, _ = process.communicate(redirected + "\n", timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "connected: leads of muster" in output and oauth.refresh_tokens()[0] not in output
    assert started_with_pkce(oauth)


def started_with_pkce(oauth: OAuthServer) -> bool:
    return oauth.count("authorize") == 1 and oauth.count("grant:authorization_code") == 1


def test_connecting_without_lms_secret_key_or_an_oauth_mailbox_says_why(
    stack: Stack, oauth: OAuthServer
) -> None:
    # In-process (click's runner): exit code and error text as a process gives them; a clean
    # exit is a SystemExit, an uncaught exception (a traceback) would be that exception.
    env = lms_env(database_url=stack.settings.database_url)
    result = lms_here("imap", "connect", "muster", "leads", env=env)
    assert result.exit_code == 1 and "LMS_SECRET_KEY is not set" in result.stderr
    assert isinstance(result.exception, SystemExit) and oauth.pending_user_codes() == []
    env["LMS_SECRET_KEY"] = SECRET_KEY
    result = lms_here("imap", "connect", "muster", "someone@else", env=env)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "no [[dealers.imap]] mailbox with user = 'someone@else'" in result.stderr


def test_a_refresh_that_lost_a_race_with_another_process_takes_the_winners_tokens(
    db_url: str, tmp_path: Path, oauth: OAuthServer
) -> None:
    """Two processes (say the poller and the relay's worker) refresh the same grant at once.
    The provider rotates: the loser's old refresh token is refused. The loser must take the
    winner's stored tokens, not mark the grant refused, and the stored refresh token must be
    the winner's (the one the provider still honours)."""
    mailbox = '\n[[dealers.imap]]\nhost = "127.0.0.1"\nsecurity = "none"\nuser = "leads"\nauth = "xoauth2"\n'
    stack = make_stack(tmp_path, db_url, mailbox + oauth.oauth_toml(), secret_key=SECRET_KEY)
    try:
        connect(stack, oauth)
        box = SecretBox(SECRET_KEY)
        oauth_config = {
            "provider": "generic",
            "client_id": oauth.state.client_id,
            "token_endpoint": f"{oauth.url}/token",
            "device_endpoint": f"{oauth.url}/devicecode",
        }

        def refresh_while_another_process_wins(client, refresh_token):  # type: ignore[no-untyped-def]
            with stack.db.session() as session:
                stale = load_token(session, box, "muster", "leads")
            assert stale is not None
            winner = real_refresh(client, refresh_token)  # the other process, a moment earlier
            with stack.db.session() as session:
                assert save_refreshed(
                    session,
                    box,
                    token=stale,
                    access_token=winner.access_token,
                    expires_in=winner.expires_in,
                    new_refresh_token=winner.refresh_token,
                    now=system_clock(),
                )
            return real_refresh(client, refresh_token)  # ours, with the now rotated-away token

        tokens = AccessTokens(
            stack.db,
            dealer_id="muster",
            user="leads",
            oauth=oauth_config,
            secret_key=SECRET_KEY,
            refresher=refresh_while_another_process_wins,
        )
        refused = tokens.get()  # say the server just refused this one
        access = tokens.get(failed=refused)
        with stack.db.session() as session:
            stored_token = load_token(session, box, "muster", "leads")
        assert stored_token is not None and stored_token.state == "connected"
        assert stored_token.access_token == access
        assert [stored_token.refresh_token] == oauth.refresh_tokens()
    finally:
        stack.close()
