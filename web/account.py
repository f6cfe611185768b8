"""A person's own settings: language, password, sign-out everywhere, the weekly summary mail."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.policy import load_policy
from models.tables import User
from models.web_tables import WebAccount
from web.auth import _set_session_cookie, client_address, form_of
from web.context import ctx_of
from web.render import render
from web.scope import user_of
from workers import accounts, weekly_summary


async def settings_page(request: Request) -> Response:
    ctx = ctx_of(request)
    me = user_of(request)

    def load() -> tuple[str | None, bool | None]:
        with ctx.db.session() as session:
            account = session.get(WebAccount, me.id)
            return account.language if account else None, _weekly(session, me)

    chosen, weekly = await run_in_threadpool(load)
    return render(
        request,
        "settings.html",
        chosen=chosen,
        weekly=weekly,
        error=None,
        done=request.query_params.get("done", ""),
    )


def _weekly(session: Session, me: User) -> bool | None:
    """Whether the person gets the weekly summary (None: their role gets none)."""
    if me.role not in weekly_summary.RECIPIENT_ROLES:
        return None
    return weekly_summary.wants_summary(session, load_policy(session, me.dealer_id), me)


async def settings_action(request: Request) -> Response:
    ctx = ctx_of(request)
    me = user_of(request)
    action = request.path_params["action"]
    form = await form_of(request)
    t = request.state.auth.t
    if action == "language":

        def save_language() -> None:
            with ctx.db.session() as session:
                user = accounts.find_user(session, me.dealer_id, me.username)
                accounts.set_language(session, user, form.get("language") or None, now=ctx.clock())

        try:
            await run_in_threadpool(save_language)
        except accounts.AccountError as exc:
            return render(
                request, "settings.html", status=422, chosen=None, weekly=None, error=str(exc), done=""
            )
        return RedirectResponse("/settings?done=language", status_code=303)
    if action == "weekly_summary" and me.role in weekly_summary.RECIPIENT_ROLES:

        def save_weekly() -> None:
            with ctx.db.session() as session:
                user = accounts.find_user(session, me.dealer_id, me.username)
                weekly_summary.set_preference(
                    session, user, form.get("weekly_summary") == "on", now=ctx.clock()
                )

        await run_in_threadpool(save_weekly)
        return RedirectResponse("/settings?done=weekly_summary", status_code=303)
    if action != "password":
        raise HTTPException(404)
    error = None
    if form.get("new", "") != form.get("new2", ""):
        error = t("passwords_differ")

    def change() -> str:
        now = ctx.clock()
        with ctx.db.session() as session:
            user = accounts.find_user(session, me.dealer_id, me.username)
            if not accounts.verify_password(session.get(WebAccount, user.id), form.get("current", "")):
                raise accounts.AccountError(t("wrong_password"))
            accounts.set_password(session, user, form.get("new", ""), now=now)
            cookie, _row = accounts.start_session(
                session, user, now=now, policy=ctx.sessions, address=client_address(request)
            )
            return cookie

    if error is None:
        try:
            cookie = await run_in_threadpool(change)
        except accounts.AccountError as exc:
            error = str(exc)
        else:
            response = RedirectResponse("/settings?done=password", status_code=303)
            _set_session_cookie(ctx, response, cookie)  # this browser stays signed in
            return response
    return render(request, "settings.html", status=422, chosen=None, weekly=None, error=error, done="")
