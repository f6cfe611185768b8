"""Mails that were stored but are no recognisable lead: the queue, one mail, and what a person
does with it (recognise again, make a lead by hand, take it out of the queue)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intake.parsing.mime import parse_mail
from models.vocabulary import LEAD_TYPES
from web.auth import form_of
from web.context import ctx_of
from web.leads import visible_sources
from web.mail_view import attachment_download, attachment_list, html_document
from web.render import render
from web.scope import parse_id, require_unassigned, scope_of, user_of, visible_unassigned
from workers import unassigned as queue


async def unassigned_page(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    require_unassigned(scope)

    def load() -> list[dict[str, Any]]:
        with ctx.db.session() as session:
            return queue.list_waiting(session, dealer=scope.dealer_id)

    mails = await run_in_threadpool(load)
    return render(request, "unassigned.html", mails=mails, done=request.query_params.get("done", ""))


def _mail_context(request: Request, mail_id: int) -> dict[str, Any]:
    ctx = ctx_of(request)
    scope = scope_of(request)
    with ctx.db.session() as session:
        row = visible_unassigned(session, scope, mail_id)
        report = queue.describe(session, row.id)
        parsed = parse_mail(row.raw)
        return {
            "mail": report,
            "html": bool(parsed.html),
            "attachments": attachment_list(parsed),
            "sources": visible_sources(session, scope),
            "types": LEAD_TYPES,
        }


async def unassigned_mail(request: Request) -> Response:
    mail_id = parse_id(request.path_params["id"])
    data = await run_in_threadpool(_mail_context, request, mail_id)
    return render(request, "unassigned_mail.html", error=None, form={}, **data)


async def _raw(request: Request) -> bytes:
    ctx = ctx_of(request)
    scope = scope_of(request)

    def load() -> bytes:
        with ctx.db.session() as session:
            return visible_unassigned(session, scope, request.path_params["id"]).raw

    return await run_in_threadpool(load)


async def unassigned_original(request: Request) -> Response:
    return html_document(await _raw(request))


async def unassigned_attachment(request: Request) -> Response:
    return attachment_download(await _raw(request), request.path_params["index"])


async def unassigned_action(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    me = user_of(request)
    mail_id = parse_id(request.path_params["id"])
    action = request.path_params["action"]
    if action not in ("reparse", "create-lead", "delete"):
        raise HTTPException(404)
    form = await form_of(request)

    def work() -> tuple[str, list[int]]:
        now = ctx.clock()
        with ctx.db.session() as session:
            visible_unassigned(session, scope, mail_id)
            if action == "reparse":
                result = queue.reparse(session, mail_id, now=now, source=form.get("source") or None)
                return f"/unassigned?done=reparse-{result.state}", list(result.outbound_ids)
            if action == "delete":
                queue.delete(session, mail_id, now=now, by=me.username)
                return "/unassigned?done=delete", []
            facts = queue.ByHand(
                email=form.get("email", ""),
                phone=form.get("phone", ""),
                name=form.get("name", ""),
                type=form["type"] if form.get("type") in LEAD_TYPES else "general",
                source=form.get("source") or "E-Mail",
            )
            lead_id = queue.create_lead(session, mail_id, facts, now=now, by=me.username)
            return f"/leads/{lead_id}?done=created", []

    try:
        target, outbound = await run_in_threadpool(work)
    except queue.NotUnassigned:
        raise HTTPException(404) from None
    except queue.CannotCreate as exc:
        data = await run_in_threadpool(_mail_context, request, mail_id)
        return render(request, "unassigned_mail.html", status=422, error=str(exc), form=form, **data)
    ctx.announce(outbound)
    return RedirectResponse(target, status_code=303)
