"""``/metrics`` on the web listener: Prometheus' text format, for an admin's personal API token
only (``Authorization: Bearer``, ``lms users token``). No token or a wrong one: 401, as the
API; a token of a non-admin, or a browser session: 403. A dealer's admin sees the
installation's unlabelled totals and the series of their own dealer, never another dealer's.
``LMS_METRICS_LISTEN`` serves everything without a token, for a private network."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from web.context import Auth, ctx_of
from workers.metrics_export import CONTENT_TYPE, exposition


async def metrics(request: Request) -> Response:
    auth: Auth = request.state.auth
    if auth.via != "token" or not auth.scope.is_admin:
        return JSONResponse(
            {"error": "/metrics needs an admin's API token (lms users token)"}, status_code=403
        )
    ctx = ctx_of(request)
    body = await run_in_threadpool(
        exposition, ctx.db, ctx.clock, directory=ctx.metrics_dir, dealer=auth.dealer.id
    )
    return Response(body, media_type=CONTENT_TYPE)
