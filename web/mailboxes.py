"""Admin page "Connect mailbox": a dealer's OAuth2 mailboxes (Microsoft 365, Google) and the
state of their grants; connecting one runs the authorization-code flow with PKCE
(:mod:`workers.mailbox_connect`): the browser goes to the provider and comes back to our
callback, which stores the tokens encrypted."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from web.auth import form_of
from web.context import ctx_of
from web.render import render
from web.scope import require_admin, scope_of
from workers.mailbox_connect import (
    ConnectError,
    finish_authorization,
    oauth_mailboxes_state,
    start_authorization,
)

CALLBACK = "/admin/mailboxes/callback"


def _callback_url(request: Request) -> str:
    """The address the provider sends the browser back to; register it with the provider
    exactly so (``LMS_WEB_PUBLIC_URL`` + this path, or the address the pane was reached at)."""
    public = ctx_of(request).public_url
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return base + CALLBACK


async def mailboxes_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    require_admin(scope)
    grants = await run_in_threadpool(oauth_mailboxes_state, ctx.db, scope.dealer_id)
    return render(
        request,
        "mailboxes.html",
        status=status,
        grants=grants,
        callback=_callback_url(request),
        error=error,
        done=request.query_params.get("done", ""),
    )


async def mailboxes_connect(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    require_admin(scope)
    form = await form_of(request)

    def start() -> Any:
        return start_authorization(
            ctx.db,
            scope.dealer_id,
            form.get("user", ""),
            secret_key=ctx.secret_key,
            now=ctx.clock(),
            redirect_uri=_callback_url(request),
        )

    try:
        begun = await run_in_threadpool(start)
    except ConnectError as exc:
        return await mailboxes_page(request, error=str(exc), status=422)
    return RedirectResponse(begun.url, status_code=303)


async def mailboxes_callback(request: Request) -> Response:
    """The provider's redirect: ``?code=…&state=…``, or ``?error=…`` when the person declined."""
    ctx = ctx_of(request)
    require_admin(scope_of(request))
    query = request.query_params
    if "error" in query:
        reason = query.get("error_description") or query["error"]
        return await mailboxes_page(request, error=f"the provider said: {reason}", status=422)

    def finish() -> Any:
        return finish_authorization(
            ctx.db,
            state=query.get("state", ""),
            code=query.get("code", ""),
            secret_key=ctx.secret_key,
            now=ctx.clock(),
        )

    try:
        await run_in_threadpool(finish)
    except ConnectError as exc:
        return await mailboxes_page(request, error=str(exc), status=422)
    return RedirectResponse("/admin/mailboxes?done=connected", status_code=303)
