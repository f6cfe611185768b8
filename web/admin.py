"""Admin pages: the dealer's completion reasons, and the operations view with retry buttons."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from models.ops_views import ops_status
from models.tables import InboundMessage, OutboundMessage
from models.webhook_tables import WebhookDelivery
from web.auth import form_of
from web.context import ctx_of
from web.render import render
from web.scope import parse_id, require_admin, scope_of
from workers import reasons as reason_edits
from workers.ops import RETRYABLE, retry


async def reasons_page(request: Request) -> Response:
    require_admin(scope_of(request))
    return await _reasons(request, done=request.query_params.get("done", ""))


async def _reasons(
    request: Request, *, error: str | None = None, done: str = "", status: int = 200
) -> Response:
    """The reasons page: every reason of the dealer, system reasons in the reader's language."""
    ctx = ctx_of(request)
    scope = scope_of(request)
    t = request.state.auth.t

    def load() -> list[Any]:
        with ctx.db.session() as session:
            return reason_edits.reason_rows(session, scope.dealer_id)

    rows = await run_in_threadpool(load)
    labels = {r.code: (t.system_reason(r.code, r.label) if r.origin == "system" else r.label) for r in rows}
    return render(request, "reasons.html", status=status, rows=rows, labels=labels, error=error, done=done)


async def reasons_action(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    require_admin(scope)
    action = request.path_params["action"]
    if action not in ("rename", "hide", "show", "add"):
        raise HTTPException(404)
    form = await form_of(request)

    def work() -> None:
        with ctx.db.session() as session:
            code = form.get("code", "").strip()
            if action == "rename":
                reason_edits.rename(session, scope.dealer_id, code, form.get("label", ""))
            elif action in ("hide", "show"):
                reason_edits.set_hidden(session, scope.dealer_id, code, action == "hide")
            else:
                reason_edits.add(session, scope.dealer_id, code, form.get("label", ""))

    try:
        await run_in_threadpool(work)
    except reason_edits.ReasonError as exc:
        return await _reasons(request, error=str(exc), status=422)
    return RedirectResponse("/admin/reasons?done=" + action, status_code=303)


def _ops_context(request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    scope = scope_of(request)
    with ctx.db.session() as session:
        status = ops_status(session, now=ctx.clock(), queues={}, dealer=scope.dealer_id)
        inbound = list(
            session.scalars(
                select(InboundMessage)
                .where(InboundMessage.dealer_id == scope.dealer_id, InboundMessage.state.in_(RETRYABLE))
                .order_by(InboundMessage.id.desc())
                .limit(200)
            )
        )
        outbound = list(
            session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.dealer_id == scope.dealer_id, OutboundMessage.state.in_(RETRYABLE))
                .order_by(OutboundMessage.id.desc())
                .limit(200)
            )
        )
        hooks = list(
            session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.dealer_id == scope.dealer_id, WebhookDelivery.state == "dead")
                .order_by(WebhookDelivery.id.desc())
                .limit(200)
            )
        )
        return {
            "webhooks": [
                {
                    "id": r.id,
                    "event": r.event,
                    "subscription": r.subscription,
                    "lead_id": r.lead_id,
                    "attempts": r.attempts,
                    "error": r.last_error,
                }
                for r in hooks
            ],
            "ops": status,
            "inbound": [
                {"id": r.id, "state": r.state, "at": r.received_at, "error": r.error, "attempts": r.attempts}
                for r in inbound
            ],
            "outbound": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "state": r.state,
                    "at": r.created_at,
                    "recipient": r.recipient,
                    "error": r.last_error,
                    "attempts": r.attempts,
                }
                for r in outbound
            ],
        }


async def ops_page(request: Request) -> Response:
    require_admin(scope_of(request))
    data = await run_in_threadpool(_ops_context, request)
    return render(request, "ops.html", done=request.query_params.get("done", ""), **data)


async def ops_retry(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    require_admin(scope)
    form = await form_of(request)
    kind = form.get("kind", "")

    def work() -> tuple[int, int, int]:
        now = ctx.clock()
        with ctx.db.session() as session:
            hooks: list[int] = []
            if kind == "all":
                hooks = list(
                    session.scalars(
                        select(WebhookDelivery.id).where(
                            WebhookDelivery.dealer_id == scope.dealer_id, WebhookDelivery.state == "dead"
                        )
                    )
                )
                ins = list(
                    session.scalars(
                        select(InboundMessage.id).where(
                            InboundMessage.dealer_id == scope.dealer_id, InboundMessage.state.in_(RETRYABLE)
                        )
                    )
                )
                outs = list(
                    session.scalars(
                        select(OutboundMessage.id).where(
                            OutboundMessage.dealer_id == scope.dealer_id, OutboundMessage.state.in_(RETRYABLE)
                        )
                    )
                )
            elif kind == "webhook":
                hook = session.get(WebhookDelivery, parse_id(form.get("id", "")))
                if hook is None or hook.dealer_id != scope.dealer_id:
                    raise HTTPException(404)
                ins, outs, hooks = [], [], [hook.id]
            else:
                row: InboundMessage | OutboundMessage | None
                if kind == "inbound":
                    row = session.get(InboundMessage, parse_id(form.get("id", "")))
                elif kind == "outbound":
                    row = session.get(OutboundMessage, parse_id(form.get("id", "")))
                else:
                    raise HTTPException(404)
                if row is None or row.dealer_id != scope.dealer_id:
                    raise HTTPException(404)
                ins, outs = ([row.id], []) if kind == "inbound" else ([], [row.id])
            n_in = sum(retry(session, now=now, inbound_id=i).inbound for i in ins)
            n_out = sum(retry(session, now=now, outbound_id=o).outbound for o in outs)
            n_hooks = sum(retry(session, now=now, webhook_id=h).webhooks for h in hooks)
            return n_in, n_out, n_hooks

    n_in, n_out, n_hooks = await run_in_threadpool(work)
    done = f"{n_in}-{n_out}" + (f"-{n_hooks}" if n_hooks else "")
    return RedirectResponse(f"/admin/ops?done={done}", status_code=303)
