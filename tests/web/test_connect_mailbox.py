"""The admin page "Connect mailbox": an admin connects an OAuth2 mailbox in the browser's
round trip (our page → the provider's sign-in → our callback), the grant is stored encrypted
and the page says so; nobody else sees or starts it, and a forged or declined return is refused."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from models.mailbox_tables import OAuthToken
from tests.support.imap_cases import SECRET_KEY
from tests.support.oauth_server import OAuthServer
from tests.web.conftest import WEB_CONFIG, WebStack, csrf_of
from workers.mailbox_connect import oauth_mailboxes_state

PUBLIC = "https://lms.example"


@pytest.fixture
def web_oauth(sqlite_url: str, tmp_path: Path, oauth: OAuthServer) -> Iterator[WebStack]:
    """The web dealers, Autohaus Muster with one xoauth2 mailbox ("leads")."""
    text = WEB_CONFIG.read_text()
    head, tail = text.split('\n[[dealers]]\nid = "other"', 1)
    mailbox = (
        '\n[[dealers.imap]]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n'
        'user = "leads"\nauth = "xoauth2"\n' + oauth.oauth_toml()
    )
    config = tmp_path / "dealers.toml"
    config.write_text(head + mailbox + '\n[[dealers]]\nid = "other"' + tail)
    stack = WebStack(sqlite_url, relay_url=f"maildir://{tmp_path / 'out'}", config=config)
    stack.ctx.secret_key = SECRET_KEY
    stack.ctx.public_url = PUBLIC
    yield stack
    stack.close()


def connect(client: httpx.Client) -> httpx.Response:
    page = client.get("/admin/mailboxes")
    return client.post("/admin/mailboxes/connect", data={"user": "leads", "csrf_token": csrf_of(page.text)})


def back_to_us(oauth: OAuthServer, provider_url: str) -> str:
    """The browser at the provider: signs in and is redirected to our callback; the path and
    query it would open on our pane (the public address is the one registered with the provider)."""
    redirected = oauth.visit(provider_url)
    assert redirected.startswith(PUBLIC + "/admin/mailboxes/callback?")
    return redirected.removeprefix(PUBLIC)


def test_an_admin_connects_a_mailbox_and_the_page_shows_it_connected(
    web_oauth: WebStack, oauth: OAuthServer
) -> None:
    client = web_oauth.sign_in("muster", "olga")
    page = client.get("/admin/mailboxes")
    assert page.status_code == 200
    assert 'data-user="leads"' in page.text and PUBLIC + "/admin/mailboxes/callback" in page.text
    started = connect(client)
    assert started.status_code == 303
    provider = started.headers["location"]
    assert provider.startswith(oauth.url + "/authorize?")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(provider).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [PUBLIC + "/admin/mailboxes/callback"]

    came_back = client.get(back_to_us(oauth, provider))
    assert came_back.status_code == 303 and came_back.headers["location"] == "/admin/mailboxes?done=connected"
    shown = client.get(came_back.headers["location"])
    assert 'role="status"' in shown.text
    assert [g.state for g in oauth_mailboxes_state(web_oauth.db, "muster")] == ["connected"]
    with web_oauth.db.session() as session:
        [token] = session.scalars(select(OAuthToken))
        stored = f"{token.access_token!r}{token.refresh_token!r}"
    assert not any(t in stored for t in oauth.refresh_tokens()), "tokens are stored encrypted"


def test_a_seller_or_a_supervisor_cannot_open_or_start_it(web_oauth: WebStack, oauth: OAuthServer) -> None:
    for user in ("anna", "max"):
        client = web_oauth.sign_in("muster", user)
        assert client.get("/admin/mailboxes").status_code == 404  # as every admin page: not there
        token = csrf_of(client.get("/leads").text)
        refused = client.post("/admin/mailboxes/connect", data={"user": "leads", "csrf_token": token})
        assert refused.status_code == 404
    assert oauth.count("authorize") == 0


def test_a_forged_state_or_a_declined_sign_in_is_refused_and_stores_nothing(
    web_oauth: WebStack, oauth: OAuthServer
) -> None:
    client = web_oauth.sign_in("muster", "olga")
    provider = connect(client).headers["location"]
    genuine = back_to_us(oauth, provider)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(genuine).query)["code"][0]
    forged = client.get("/admin/mailboxes/callback", params={"code": code, "state": "forged"})
    assert forged.status_code == 422 and "start the connection again" in forged.text
    said_no = {"error": "access_denied", "error_description": "the user said no"}
    declined = client.get("/admin/mailboxes/callback", params=said_no)
    assert declined.status_code == 422 and "the user said no" in declined.text
    assert [g.state for g in oauth_mailboxes_state(web_oauth.db, "muster")] == ["not_connected"]
    # The genuine return still works once, and only once.
    assert client.get(genuine).status_code == 303
    again = client.get(genuine)
    assert again.status_code == 422 and "already used" in again.text


def test_without_lms_secret_key_the_page_says_why_and_sends_nobody_away(
    web_oauth: WebStack, oauth: OAuthServer
) -> None:
    web_oauth.ctx.secret_key = None
    client = web_oauth.sign_in("muster", "olga")
    refused = connect(client)
    assert refused.status_code == 422 and "LMS_SECRET_KEY" in refused.text
    assert oauth.count("authorize") == 0
