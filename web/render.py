"""Pages and fragments from Jinja2 templates (autoescaped), with the words of the person asking."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from web.context import POLL_SECONDS, ctx_of
from web.i18n import Translator

TEMPLATES = Path(__file__).with_name("templates")

env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def query(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


env.globals["query"] = query


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def accept_language(request: Request) -> str:
    header = request.headers.get("Accept-Language", "").lower()
    return "de" if header.startswith("de") else "en"


def translator(request: Request) -> Translator:
    auth = getattr(request.state, "auth", None)
    if auth is not None:
        return auth.t
    return Translator(accept_language(request))


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    ctx = ctx_of(request)
    auth = getattr(request.state, "auth", None)
    html = env.get_template(template).render(
        request=request,
        t=translator(request),
        auth=auth,
        static=ctx.static.url,
        poll_seconds=POLL_SECONDS,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.headers["Vary"] = "HX-Request, HX-Target, Cookie"
    return response
