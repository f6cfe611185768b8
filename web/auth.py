"""Sign-in, sessions and CSRF for the pane.

Every request but the public few (``/healthz``, ``/login``, an invitation link, static files)
is resolved to a person by :class:`AuthMiddleware` before any handler runs: a session cookie
(pages and API) or, for ``/api/``, ``Authorization: Bearer TOKEN``. Without one, pages redirect
to the sign-in form and the API answers 401. A state-changing request on a session must echo
the session's CSRF token (``X-CSRF-Token`` header, as htmx sends it through ``hx-headers``, or
the ``csrf_token`` form field) and must not come from another origin.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote

from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from models.lead_scope import scope_for
from models.tables import Dealer
from web.context import Auth, WebContext, ctx_of
from web.render import render, translator
from workers import accounts

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_CSRF_COOKIE = "lms_login_csrf"
MAX_FORM_BYTES = 1024 * 1024


def is_public(path: str) -> bool:
    return path in ("/healthz", "/readyz", "/login") or path.startswith(("/static/", "/invite/"))


def takes_token(path: str) -> bool:
    """Where ``Authorization: Bearer`` counts: the JSON API and ``/metrics``."""
    return path.startswith("/api/") or path == "/metrics"


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def identify(ctx: WebContext, request: Request) -> Auth | None:
    """The person behind the request, or None. One short transaction."""
    header = request.headers.get("Authorization", "")
    now = ctx.clock()
    with ctx.db.session() as session:
        session_id = csrf = None
        if takes_token(request.url.path) and header.lower().startswith("bearer "):
            user = accounts.token_user(session, header[7:].strip(), now=now)
            via = "token"
        else:
            found = accounts.session_user(
                session, request.cookies.get(ctx.session_cookie, ""), now=now, policy=ctx.sessions
            )
            user, web_session = found if found else (None, None)
            if web_session is not None:
                session_id, csrf = web_session.id, web_session.csrf_token
            via = "session"
        if user is None:
            return None
        dealer = session.get(Dealer, user.dealer_id)
        assert dealer is not None
        return Auth(
            user=user,
            dealer=dealer,
            scope=scope_for(session, user),
            lang=accounts.language_of(session, user),
            via=via,
            csrf=csrf,
            session_id=session_id,
        )


def _same_origin(request: Request) -> bool:
    """Browsers send Origin on every cross-site POST; a foreign one is refused outright."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


class AuthMiddleware:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        ctx = ctx_of(request)
        try:
            auth = await run_in_threadpool(identify, ctx, request)
        except DBAPIError as exc:
            log.warning("web: database unavailable (%s)", type(exc.orig).__name__)
            await unavailable(request)(scope, receive, send)
            return
        if auth is None:
            await _unauthenticated(request)(scope, receive, send)
            return
        scope.setdefault("state", {})["auth"] = auth
        if request.method not in SAFE_METHODS and auth.via == "session":
            body = await _read_body(receive)
            if body is None:
                await PlainTextResponse("request too large", status_code=413)(scope, receive, send)
                return
            if not (_same_origin(request) and _csrf_ok(request, auth, body)):
                await _csrf_refused(request)(scope, receive, send)
                return
            receive = _replay(body)
        await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _csrf_ok(request: Request, auth: Auth, body: bytes) -> bool:
    expected = auth.csrf or ""
    given = request.headers.get("X-CSRF-Token", "")
    if not given and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("utf-8", "replace")).get("csrf_token", [""])
        given = values[0]
    return bool(expected) and secrets.compare_digest(given.encode(), expected.encode())


def _unauthenticated(request: Request) -> Response:
    if takes_token(request.url.path):
        return JSONResponse(
            {"error": "sign in, or send Authorization: Bearer TOKEN (lms users token)"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="lms"'},
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/login?next={quote(target, safe='')}"
    if request.headers.get("HX-Request") == "true" or request.method not in SAFE_METHODS:
        return PlainTextResponse("sign in first", status_code=401, headers={"HX-Redirect": login})
    return RedirectResponse(login, status_code=303)


def _csrf_refused(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "CSRF token missing or wrong"}, status_code=403)
    return PlainTextResponse(translator(request)("form_expired"), status_code=403)


def unavailable(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "the database is unavailable"}, status_code=503)
    return PlainTextResponse("The database is unavailable; try again shortly.", status_code=503)


# -- sign-in pages ----------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Only a path of ours: never an absolute or scheme-relative URL (open redirect)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/leads"


def _login_token(request: Request) -> str:
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def _with_login_cookie(request: Request, response: Response, token: str) -> Response:
    ctx = ctx_of(request)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=ctx.secure_cookies,
    )
    return response


def _login_form_ok(request: Request, form: dict[str, str]) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form.get("csrf_token", "")
    return bool(cookie) and secrets.compare_digest(cookie.encode(), given.encode()) and _same_origin(request)


def _set_session_cookie(ctx: WebContext, response: Response, token: str) -> None:
    response.set_cookie(
        ctx.session_cookie,
        token,
        max_age=int(ctx.sessions.absolute.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=ctx.secure_cookies,
        path="/",
    )


async def form_of(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def login_page(request: Request) -> Response:
    ctx = ctx_of(request)
    token = _login_token(request)
    if request.method == "GET":
        if request.cookies.get(ctx.session_cookie):
            auth = await run_in_threadpool(identify, ctx, request)
            if auth is not None:
                return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        response = render(
            request, "login.html", csrf=token, next=request.query_params.get("next", ""), error=None, form={}
        )
        return _with_login_cookie(request, response, token)
    form = await form_of(request)
    t = translator(request)
    if not _login_form_ok(request, form):
        response = render(
            request,
            "login.html",
            status=403,
            csrf=token,
            next=form.get("next", ""),
            error=t("form_expired"),
            form=form,
        )
        return _with_login_cookie(request, response, token)

    def attempt() -> str:
        now = ctx.clock()
        refused: accounts.SignInRefused | None = None
        with ctx.db.session() as session:
            try:
                user = accounts.authenticate(
                    session,
                    form.get("dealer", "").strip(),
                    form.get("user", "").strip(),
                    form.get("password", ""),
                    address=client_address(request),
                    now=now,
                    throttle=ctx.throttle,
                )
            except accounts.SignInRefused as exc:
                refused = exc  # committed with its failure rows, raised after the commit
            else:
                cookie, _row = accounts.start_session(
                    session,
                    user,
                    now=now,
                    policy=ctx.sessions,
                    address=client_address(request),
                    user_agent=request.headers.get("User-Agent", ""),
                )
        if refused is not None:
            raise refused
        log.info("web: %s/%s signed in", user.dealer_id, user.username)
        return cookie

    try:
        cookie = await run_in_threadpool(attempt)
    except accounts.SignInRefused as refused:
        if refused.reason == "throttled" and refused.retry_after is not None:
            minutes = max(1, math.ceil(refused.retry_after.total_seconds() / 60))
            message, status = t("throttled", minutes=minutes), 429
            headers = {"Retry-After": str(int(refused.retry_after.total_seconds()) + 1)}
        else:
            message, status, headers = t("invalid_sign_in"), 401, {}
        response = render(
            request,
            "login.html",
            status=status,
            headers=headers,
            csrf=token,
            next=form.get("next", ""),
            error=message,
            form={"dealer": form.get("dealer", ""), "user": form.get("user", "")},
        )
        return _with_login_cookie(request, response, token)
    redirect = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    _set_session_cookie(ctx, redirect, cookie)
    redirect.delete_cookie(LOGIN_CSRF_COOKIE)
    return redirect


async def logout(request: Request) -> Response:
    ctx = ctx_of(request)
    token = request.cookies.get(ctx.session_cookie, "")

    def end() -> None:
        with ctx.db.session() as session:
            accounts.end_session(session, token, now=ctx.clock())

    await run_in_threadpool(end)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(ctx.session_cookie, path="/", secure=ctx.secure_cookies, httponly=True)
    if request.headers.get("HX-Request") == "true":
        response.headers["HX-Redirect"] = "/login"
    return response


async def invitation_page(request: Request) -> Response:
    ctx = ctx_of(request)
    invite_token = request.path_params["token"]
    token = _login_token(request)
    t = translator(request)

    def who() -> str | None:
        with ctx.db.session() as session:
            found = accounts.invitation_user(session, invite_token, now=ctx.clock())
            return found[0].name if found else None

    name = await run_in_threadpool(who)
    if name is None:
        return render(request, "message.html", status=404, message=t("invitation_invalid"))
    if request.method == "GET":
        response = render(request, "invite.html", csrf=token, name=name, error=None)
        return _with_login_cookie(request, response, token)
    form = await form_of(request)
    error = None
    if not _login_form_ok(request, form):
        error = t("form_expired")
    elif form.get("password", "") != form.get("password2", ""):
        error = t("passwords_differ")
    if error is None:

        def accept() -> str:
            now = ctx.clock()
            with ctx.db.session() as session:
                user = accounts.accept_invitation(session, invite_token, form.get("password", ""), now=now)
                cookie, _row = accounts.start_session(
                    session, user, now=now, policy=ctx.sessions, address=client_address(request)
                )
                return cookie

        try:
            cookie = await run_in_threadpool(accept)
        except accounts.AccountError as exc:
            error = str(exc)
        else:
            redirect = RedirectResponse("/leads", status_code=303)
            _set_session_cookie(ctx, redirect, cookie)
            return redirect
    response = render(request, "invite.html", status=422, csrf=token, name=name, error=error)
    return _with_login_cookie(request, response, token)
