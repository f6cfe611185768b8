"""The pane served for real (uvicorn on a loopback port) over our stack, with people signed in
through the sign-in form, as a browser does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select

from intake.store import store_message
from models.clock import Clock, system_clock
from models.tables import Lead, User
from tests.support.mails import enquiry
from tests.support.services import PG_ADMIN_DSN, free_port, require, unique
from tests.support.sink import SmtpSink
from tests.support.stack import ROOT, Stack
from web.context import WebContext
from web.server import WebServer
from workers import accounts
from workers import lead_actions as actions

WEB_CONFIG = ROOT / "tests" / "fixtures" / "dealers_web.toml"
PASSWORD = "correct horse battery"
MAILBOXES = {"muster": "muster@leads.example.com", "other": "anders@leads.example.com"}


class WebStack:
    """Our stack plus the pane; every configured user has the password ``PASSWORD``."""

    def __init__(
        self,
        database_url: str,
        *,
        relay_url: str,
        clock: Clock = system_clock,
        smtp: bool = False,
        worker_threads: int | None = None,
        config: Path = WEB_CONFIG,
    ) -> None:
        self.stack = Stack(
            database_url,
            relay_url=relay_url,
            clock=clock,
            config=config,
            smtp=smtp,
            worker_threads=worker_threads,
            sweep_grace_seconds=60,
        )
        self.clock = clock
        self.serial = 0
        self.ctx = WebContext(
            db=self.stack.db,
            clock=clock,
            enqueue_send=self.stack.runtime.enqueue_send if worker_threads else None,
            send_grace=timedelta(seconds=60) if worker_threads else timedelta(0),
        )
        self.server = WebServer(self.ctx, "127.0.0.1", free_port()).start()
        self.url = f"http://127.0.0.1:{self.server.port}"
        with self.db.session() as session:
            for user in session.scalars(select(User)):
                accounts.set_password(session, user, PASSWORD, now=clock())

    @property
    def db(self) -> Any:
        return self.stack.db

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30, **kwargs)

    def sign_in(self, dealer: str, user: str, password: str = PASSWORD) -> httpx.Client:
        client = self.client()
        response = sign_in(client, dealer, user, password)
        assert response.status_code == 303, response.text
        return client

    def lead(self, *, dealer: str = "muster", editor: str | None = "anna", **mail: Any) -> int:
        """A lead as a mail makes it (stored, then ingested), given to ``editor`` (None: pool)."""
        mail.setdefault("to", MAILBOXES[dealer])
        # A new contact each time: an open lead's contact writing again is no new lead.
        self.serial += 1
        mail.setdefault("sender", f"Kunde {self.serial} <kunde{self.serial}@example.org>")
        [stored] = store_message(
            self.db,
            enquiry(**mail),
            envelope_from="kunde@example.org",
            recipients=[mail["to"]],
            via="smtp",
            now=self.clock(),
        )
        self.stack.runtime.ingest(stored.id)
        with self.db.session() as session:
            lead = session.scalars(select(Lead).where(Lead.inbound_id == stored.id)).unique().one()
            current = lead.editor.username if lead.editor else None
            if editor != current:
                if editor is None:
                    actions.to_pool(session, lead, by="test", reason="", now=self.clock())
                else:
                    actions.assign(session, lead, editor, by="test", reason="", now=self.clock())
            return lead.id

    def close(self) -> None:
        self.server.stop()
        self.stack.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: httpx.Client, dealer: str, user: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"dealer": dealer, "user": user, "password": password, "csrf_token": csrf_of(page.text)},
    )


def post_form(
    client: httpx.Client, path: str, data: dict[str, str], *, page: str = "/leads"
) -> httpx.Response:
    """A form posted as the page would: with the session's CSRF token from ``page``."""
    token = csrf_of(client.get(page).text)
    return client.post(path, data={**data, "csrf_token": token})


@pytest.fixture
def web(db_url: str, tmp_path: Path) -> Iterator[WebStack]:
    stack = WebStack(db_url, relay_url=f"maildir://{tmp_path}/outbox")
    yield stack
    stack.close()


@pytest.fixture
def web_sqlite(sqlite_url: str, tmp_path: Path) -> Iterator[WebStack]:
    stack = WebStack(sqlite_url, relay_url=f"maildir://{tmp_path}/outbox")
    yield stack
    stack.close()


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run (Debian's, driven by Playwright)."""
    from playwright.sync_api import sync_playwright

    from tests.support.chromium import ARGS, ensure_chromium

    executable = ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebStack, SmtpSink]]:
    """The whole product on PostgreSQL for a module of browser tests: SMTP intake, workers, the
    pane, and a real SMTP sink for what we send."""
    require("PostgreSQL", "127.0.0.1", 5432)
    name = unique("lms_web")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    sink = SmtpSink(free_port()).start()
    stack = WebStack(
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        relay_url=sink.url,
        smtp=True,
        worker_threads=2,
    )
    yield stack, sink
    stack.close()
    sink.stop()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def browser_sign_in(browser: Any, web: WebStack, dealer: str, user: str, **options: Any) -> Any:
    """A new browser context (its own cookies) signed in through the form; returns its page."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, **options)
    page = context.new_page()
    page.goto(f"{web.url}/login")
    page.fill("input[name=dealer]", dealer)
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web.url}/leads")
    return page
