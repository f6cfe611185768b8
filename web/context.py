"""What the pane's handlers share: the database, the clock, the policies, the static files."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from starlette.requests import Request

from models.clock import Clock, system_clock
from models.db import Database
from models.health import Thresholds
from models.health_facts import thresholds_from
from models.lead_scope import LeadScope
from models.settings import Settings
from models.tables import Dealer, User
from web.i18n import Translator
from web.static import StaticFiles
from workers.accounts import SessionPolicy, ThrottlePolicy

log = logging.getLogger(__name__)

POLL_SECONDS = 4


@dataclass
class WebContext:
    db: Database
    clock: Clock = system_clock
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    secure_cookies: bool = False
    # Hands a queued outgoing mail to the workers at once (inside ``lms run``); without it the
    # sweeper of the process with the workers sends it.
    enqueue_send: Callable[[int], None] | None = None
    send_grace: timedelta = timedelta(0)
    static: StaticFiles = field(default_factory=StaticFiles)
    # Encrypts OAuth2 tokens (LMS_SECRET_KEY) when an admin connects a mailbox here.
    secret_key: str | None = None
    # Where browsers reach the pane (LMS_WEB_PUBLIC_URL): the OAuth2 callback's address.
    public_url: str | None = None
    # Asked by /readyz (memory://: the broker lives in this process).
    broker_url: str = "memory://"
    health_limits: Thresholds = field(default_factory=Thresholds)
    # prometheus_client's multiprocess directory (LMS_METRICS_DIR) that /metrics reads.
    metrics_dir: str | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        db: Database,
        *,
        clock: Clock = system_clock,
        enqueue_send: Callable[[int], None] | None = None,
    ) -> WebContext:
        return cls(
            db=db,
            clock=clock,
            sessions=SessionPolicy(
                idle=timedelta(seconds=settings.web_session_idle_seconds),
                absolute=timedelta(seconds=settings.web_session_max_seconds),
            ),
            secure_cookies=settings.web_secure_cookies,
            secret_key=settings.secret_key,
            public_url=settings.web_public_url,
            broker_url=settings.broker_url,
            health_limits=thresholds_from(settings),
            metrics_dir=os.path.abspath(settings.metrics_dir) if settings.metrics_dir else None,
            enqueue_send=enqueue_send,
            send_grace=timedelta(seconds=settings.sweep_grace_seconds) if enqueue_send else timedelta(0),
        )

    @property
    def session_cookie(self) -> str:
        # The __Host- prefix binds the cookie to this host and path, Secure only (RFC 6265bis).
        return "__Host-lms_session" if self.secure_cookies else "lms_session"

    def announce(self, outbound_ids: list[int]) -> None:
        """After the commit: hand the new outgoing mails to the workers (the sweeper otherwise)."""
        if self.enqueue_send is None:
            return
        for outbound_id in outbound_ids:
            try:
                self.enqueue_send(outbound_id)
            except Exception:  # stored is what counts; the sweeper sends it
                log.warning("could not enqueue outbound %s; the sweeper will", outbound_id, exc_info=True)


@dataclass(frozen=True)
class Auth:
    """Who is asking, resolved once per request by the middleware."""

    user: User
    dealer: Dealer
    scope: LeadScope
    lang: str
    via: str  # session | token
    csrf: str | None = None
    session_id: str | None = None

    @cached_property  # one per request: Babel's locale is parsed once
    def t(self) -> Translator:
        return Translator(self.lang, self.dealer.timezone, self.dealer.country)


def ctx_of(request: Request) -> WebContext:
    return request.app.state.ctx
