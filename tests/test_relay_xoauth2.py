"""Outgoing mail through a provider that wants OAuth2 (``smtp+xoauth2://``): the grant of the
connected mailbox, STARTTLS verified against the test CA, the token checked by the SMTP
server at the test's OAuth2 server; refreshed once when refused; a revoked grant keeps the
mail queued with the reason until the mailbox is connected again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from models.clock import system_clock
from tests.support.clock import FakeClock
from tests.support.imap_cases import SECRET_KEY, make_stack, ops_status
from tests.support.mails import enquiry
from tests.support.oauth_server import OAuthServer
from tests.support.services import free_port, wait_until
from tests.support.stack import Stack
from tests.support.tls import TestCA
from tests.support.xoauth2_smtp import XOAuth2SmtpServer
from workers.mailbox_connect import Connected, poll_device, start_device
from workers.relay import Outgoing, Relay, TransientDeliveryError, relay_from_url

MAILBOX = '\n[[dealers.imap]]\nhost = "127.0.0.1"\nsecurity = "none"\nuser = "leads"\nauth = "xoauth2"\n'


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


@pytest.fixture
def submission(ca: TestCA, oauth: OAuthServer) -> Iterator[XOAuth2SmtpServer]:
    server = XOAuth2SmtpServer(
        free_port(), ca.issue("localhost", dns=("localhost",)), f"{oauth.url}/introspect"
    ).start()
    yield server
    server.stop()


@pytest.fixture
def clocked(
    sqlite_url: str, tmp_path: Path, oauth: OAuthServer, ca: TestCA, submission: XOAuth2SmtpServer
) -> Iterator[tuple[Stack, FakeClock]]:
    clock = FakeClock()
    relay = f"smtp+xoauth2://leads@localhost:{submission.port}?ca_file={ca.ca_file}"
    stack = make_stack(
        tmp_path,
        sqlite_url,
        MAILBOX + oauth.oauth_toml(),
        relay_url=relay,
        secret_key=SECRET_KEY,
        worker_threads=2,
        smtp=True,
        clock=clock,
    )
    yield stack, clock
    stack.close()


def connect(stack: Stack, oauth: OAuthServer) -> None:
    started = start_device(stack.db, "muster", "leads", secret_key=SECRET_KEY, now=system_clock())
    oauth.approve(started.user_code)
    assert isinstance(poll_device(stack.db, started, secret_key=SECRET_KEY, now=system_clock()), Connected)


def test_answers_go_out_through_the_xoauth2_relay_with_the_mailboxs_grant(
    clocked: tuple[Stack, FakeClock], oauth: OAuthServer, submission: XOAuth2SmtpServer
) -> None:
    stack, _ = clocked
    connect(stack, oauth)
    stack.send(enquiry(sender="Erika <erika@example.org>"))
    wait_until(lambda: submission.to("erika@example.org"), what="the answer through the XOAUTH2 relay")
    assert submission.logins and all(login == ("leads", True) for login in submission.logins)
    # The provider revoked the access token early: refreshed once, sent all the same.
    oauth.expire_access_tokens()
    stack.send(enquiry(sender="Max <max@example.org>", subject="Leasing Anfrage"))
    wait_until(lambda: submission.to("max@example.org"), what="the answer after one refresh")
    assert oauth.count("grant:refresh_token") == 1
    assert ("leads", False) in submission.logins


def test_a_revoked_grant_keeps_the_answer_queued_with_the_reason_until_connected_again(
    clocked: tuple[Stack, FakeClock], oauth: OAuthServer, submission: XOAuth2SmtpServer
) -> None:
    stack, clock = clocked
    connect(stack, oauth)
    oauth.revoke_refresh_tokens()
    oauth.expire_access_tokens()
    stack.send(enquiry(sender="Erika <erika@example.org>"))
    answer = wait_until(
        lambda: [r for r in stack.outbound("autoresponse") if r.attempts == 1 and r.state == "queued"],
        what="a failed first attempt",
    )
    [row] = answer  # type: ignore[misc]
    assert "lms imap connect muster leads" in (row.last_error or "")
    assert ops_status(stack)["oauth"][0]["state"] == "refused"
    assert submission.to("erika@example.org") == []
    connect(stack, oauth)  # a person connects the mailbox again
    clock.advance(timedelta(minutes=5))
    stack.runtime.sweep_once()
    wait_until(lambda: submission.to("erika@example.org"), what="the answer after reconnecting")
    wait_until(lambda: [r.state for r in stack.outbound("autoresponse")] == ["sent"], what="the row sent")
    assert len(submission.to("erika@example.org")) == 1


def hand_over(relay: Relay, raw: bytes) -> None:
    with relay.session() as session:
        session.send(
            Outgoing("<t@leads.example.com>", raw, "muster@leads.example.com", ["erika@example.org"])
        )


def test_a_relay_url_that_names_no_connected_mailbox_is_refused_clearly(
    clocked: tuple[Stack, FakeClock], submission: XOAuth2SmtpServer, oauth: OAuthServer
) -> None:
    stack, _ = clocked
    relay = relay_from_url(f"smtp+xoauth2://nobody@localhost:{submission.port}", db=stack.db)
    with pytest.raises(TransientDeliveryError, match=r"no dealer has a \[\[dealers.imap\]\] mailbox"):
        hand_over(relay, enquiry())
    connect(stack, oauth)
    untrusted = relay_from_url(f"smtp+xoauth2://leads@localhost:{submission.port}", db=stack.db)
    with pytest.raises(TransientDeliveryError, match="certificate verify failed"):  # no ca_file
        hand_over(untrusted, enquiry())
    assert submission.logins == []
    with pytest.raises(ValueError, match="takes no password"):
        relay_from_url(f"smtp+xoauth2://leads:pw@localhost:{submission.port}", db=stack.db)
    with pytest.raises(ValueError, match="needs the database"):
        relay_from_url(f"smtp+xoauth2://leads@localhost:{submission.port}")
