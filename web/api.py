"""The JSON API under ``/api/`` (INTERFACE shapes), for a session or a personal API token, in
the same scope as the person's pages."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models.health_facts import health_verdict
from models.lead_views import lead_dict, list_leads
from models.ops_views import ops_status
from web.context import ctx_of
from web.scope import require_admin, scope_of, visible_lead
from workers import privacy
from workers.broker import broker_unready

log = logging.getLogger(__name__)

FILTERS = {"search": "search", "type": "type_", "source": "source", "editor": "editor"}
CHOICES = {"status": ("open", "completed"), "due": ("none", "soon", "overdue"), "sort": ("activity", "due")}


class BadRequest(Exception):
    pass


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _filters(request: Request) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name, arg in FILTERS.items():
        if request.query_params.get(name):
            filters[arg] = request.query_params[name]
    for name, allowed in CHOICES.items():
        value = request.query_params.get(name)
        if value:
            if value not in allowed:
                raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
            filters[name] = value
    return filters


async def api_leads(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    try:
        filters = _filters(request)
        limit = _int(request, "limit", 50, 1, 1000)
        offset = _int(request, "offset", 0, 0, 10**9)
    except BadRequest as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)

    def load() -> dict[str, Any]:
        with ctx.db.session() as session:
            return list_leads(session, now=ctx.clock(), scope=scope, limit=limit, offset=offset, **filters)

    return JSONResponse(await run_in_threadpool(load))


async def api_lead(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)

    def load() -> dict[str, Any]:
        with ctx.db.session() as session:
            lead = visible_lead(session, scope, request.path_params["id"])
            privacy.record(
                session,
                dealer_id=scope.dealer_id,
                actor=f"api:{scope.username}",
                user_id=scope.user_id,
                action="read",
                lead_id=lead.id,
                now=ctx.clock(),
            )
            return lead_dict(session, lead, now=ctx.clock(), with_activities=True)

    return JSONResponse(await run_in_threadpool(load))


async def api_ops_status(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    require_admin(scope)

    def load() -> dict[str, Any]:
        with ctx.db.session() as session:
            return ops_status(session, now=ctx.clock(), queues={}, dealer=scope.dealer_id)

    return JSONResponse(await run_in_threadpool(load))


async def api_ops_health(request: Request) -> Response:
    """The health verdict of the admin's dealer (and what concerns every dealer); 200 whatever
    it says: the body tells, like Zammad's monitoring endpoint."""
    ctx = ctx_of(request)
    scope = scope_of(request)
    require_admin(scope)

    def load() -> dict[str, Any]:
        with ctx.db.read() as session:
            return health_verdict(
                session, now=ctx.clock(), limits=ctx.health_limits, dealer=scope.dealer_id
            ).to_dict()

    return JSONResponse(await run_in_threadpool(load))


async def healthz(request: Request) -> Response:
    """Liveness: the process answers. Asks nothing outside it (a database outage must not get
    every replica restarted; /readyz tells that)."""
    return JSONResponse({"ok": True})


async def readyz(request: Request) -> Response:
    """Readiness: the database and the broker answer; 503 with the reason otherwise."""
    ctx = ctx_of(request)

    def check() -> list[str]:
        # Public: the reasons name the failing part and the error's class only; hosts, users
        # and the server's words go to the log.
        reasons = []
        try:
            with ctx.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            orig = getattr(exc, "orig", None) or exc
            log.warning("readiness: database: %s: %s", type(orig).__name__, orig)
            reasons.append(f"database: {type(orig).__name__}")
        broker = broker_unready(ctx.broker_url)
        if broker:
            log.warning("readiness: %s", broker)
            reasons.append(broker.split(":", 2)[0] + ":" + broker.split(":", 2)[1])
        return reasons

    reasons = await run_in_threadpool(check)
    if reasons:
        return JSONResponse({"ready": False, "reasons": reasons}, status_code=503)
    return JSONResponse({"ready": True})
