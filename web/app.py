"""The Leads pane: a Starlette application (server-rendered Jinja2, htmx for partial updates),
and the JSON API under ``/api/``.

Middleware, outermost first: a deadline for every request (a stuck database or a slow
client gives 503, never a hung connection), security headers on every response (a CSP that
allows only our own scripts and styles, no framing by others, no caching of pages with
customer data), then sign-in and CSRF (:mod:`web.auth`), then the routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from web import account, admin, api, leads, mailboxes, metrics_page, reports, unassigned
from web.auth import AuthMiddleware, invitation_page, login_page, logout, unavailable
from web.context import WebContext
from web.render import render

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)


REQUEST_DEADLINE_SECONDS = 30.0


class Deadline:
    """A request that takes longer than the deadline ends with 503 (a slow client sending its
    body, a frozen database behind a page). The server side bounds connections and idle time
    (:mod:`web.server`); the database its statements (``LMS_DATABASE_STATEMENT_TIMEOUT_SECONDS``)."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        seconds: float = REQUEST_DEADLINE_SECONDS,
    ) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracking), self.seconds)
        except TimeoutError:
            log.warning(
                "web: %s %s took longer than %.0f s", scope.get("method"), scope.get("path"), self.seconds
            )
            if not started:
                response = PlainTextResponse("timed out", status_code=503)
                await response(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                defaults = {
                    b"content-security-policy": PAGE_CSP.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"same-origin",
                    b"x-frame-options": b"SAMEORIGIN",
                    b"cache-control": b"no-store",
                }
                headers += [(k, v) for k, v in defaults.items() if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def root(request: Request) -> Response:
    return RedirectResponse("/leads", status_code=303)


ROUTES = [
    Route("/healthz", api.healthz, methods=["GET"]),
    Route("/readyz", api.readyz, methods=["GET"]),
    Route("/metrics", metrics_page.metrics, methods=["GET"]),
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/invite/{token}", invitation_page, methods=["GET", "POST"]),
    Route("/", root, methods=["GET"]),
    Route("/leads", leads.leads_page, methods=["GET"]),
    Route("/leads/{id}", leads.lead_page, methods=["GET"]),
    Route("/leads/{id}/original.html", leads.lead_original, methods=["GET"]),
    Route("/leads/{id}/attachments/{index}", leads.lead_attachment, methods=["GET"]),
    Route("/leads/{id}/{action}", leads.lead_action, methods=["POST"]),
    Route("/unassigned", unassigned.unassigned_page, methods=["GET"]),
    Route("/unassigned/{id}", unassigned.unassigned_mail, methods=["GET"]),
    Route("/unassigned/{id}/original.html", unassigned.unassigned_original, methods=["GET"]),
    Route("/unassigned/{id}/attachments/{index}", unassigned.unassigned_attachment, methods=["GET"]),
    Route("/unassigned/{id}/{action}", unassigned.unassigned_action, methods=["POST"]),
    Route("/admin/reasons", admin.reasons_page, methods=["GET"]),
    Route("/admin/reasons/{action}", admin.reasons_action, methods=["POST"]),
    Route("/admin/ops", admin.ops_page, methods=["GET"]),
    Route("/admin/mailboxes", mailboxes.mailboxes_page, methods=["GET"]),
    Route("/admin/mailboxes/connect", mailboxes.mailboxes_connect, methods=["POST"]),
    Route(mailboxes.CALLBACK, mailboxes.mailboxes_callback, methods=["GET"]),
    Route("/admin/ops/retry", admin.ops_retry, methods=["POST"]),
    Route("/reports", reports.reports_page, methods=["GET"]),
    Route("/settings", account.settings_page, methods=["GET"]),
    Route("/settings/{action}", account.settings_action, methods=["POST"]),
    Route("/api/leads", api.api_leads, methods=["GET"]),
    Route("/api/leads/{id}", api.api_lead, methods=["GET"]),
    Route("/api/ops/status", api.api_ops_status, methods=["GET"]),
    Route("/api/ops/health", api.api_ops_health, methods=["GET"]),
    Route("/api/report", reports.api_report, methods=["GET"]),
]


async def not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "not found" if status == 404 else str(exc)}, status_code=status)
    if status != 404:
        return PlainTextResponse(str(getattr(exc, "detail", "")), status_code=status)
    if getattr(request.state, "auth", None) is None:
        return PlainTextResponse("not found", status_code=404)
    t = request.state.auth.t
    return render(request, "message.html", status=404, message=t("not_found"))


async def database_down(request: Request, exc: Exception) -> Response:
    log.warning("web: %s %s: database unavailable (%s)", request.method, request.url.path, type(exc).__name__)
    return unavailable(request)


def create_app(ctx: WebContext) -> Starlette:
    routes = [*ROUTES, Route("/static/{path:path}", ctx.static.endpoint, methods=["GET"])]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Deadline), Middleware(SecurityHeaders), Middleware(AuthMiddleware)],
        exception_handlers={HTTPException: not_found, DBAPIError: database_down},
    )
    app.state.ctx = ctx
    return app
