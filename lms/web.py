"""A small read-only JSON API (``lms web``, inside ``lms run``), on the standard library.

GET /healthz                  the database answers: {"ok": true}
GET /api/leads?…              the leads list (the filters of ``lms leads list``), INTERFACE shape
GET /api/leads/<id>           one lead with its timeline
GET /api/ops/status           the operations view of ``lms ops status``
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import text

from models.clock import Clock, system_clock
from models.db import Database
from models.lead_views import lead_dict, list_leads
from models.ops_views import ops_status
from models.tables import Lead

log = logging.getLogger(__name__)

FILTERS = ("dealer", "search", "type", "source", "editor", "status", "due")


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name, [str(default)])[0]
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def route(db: Database, clock: Clock, path: str) -> Any:
    parts = urlsplit(path)
    query = parse_qs(parts.query)
    segments = [s for s in parts.path.split("/") if s]
    now = clock()
    if segments == ["healthz"]:
        with db.read() as session:
            session.execute(text("SELECT 1"))
        return {"ok": True}
    if segments == ["api", "leads"]:
        filters = {name: query[name][0] for name in FILTERS if query.get(name)}
        if "type" in filters:
            filters["type_"] = filters.pop("type")
        with db.read() as session:
            return list_leads(
                session,
                now=now,
                limit=_int(query, "limit", 50, 1, 1000),
                offset=_int(query, "offset", 0, 0, 10**9),
                **filters,
            )
    if len(segments) == 3 and segments[:2] == ["api", "leads"]:
        if not segments[2].isdigit():
            raise ApiError(HTTPStatus.NOT_FOUND, "no such lead")
        with db.read() as session:
            lead = session.get(Lead, int(segments[2]))
            if lead is None:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no lead {segments[2]}")
            return lead_dict(session, lead, now=now, with_activities=True)
    if segments == ["api", "ops", "status"]:
        with db.read() as session:
            return ops_status(session, now=now, queues={})
    raise ApiError(HTTPStatus.NOT_FOUND, "not found")


def make_server(db: Database, host: str, port: int, clock: Clock = system_clock) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "lms"

        def do_GET(self) -> None:
            try:
                status, body = HTTPStatus.OK, route(db, clock, self.path)
            except ApiError as exc:
                status, body = exc.status, {"error": str(exc)}
            except Exception as exc:  # the database is down, say: a 503, no traceback to the client
                log.exception("web request %s failed", self.path)
                status, body = HTTPStatus.SERVICE_UNAVAILABLE, {"error": type(exc).__name__}
            data = json.dumps(body, ensure_ascii=False, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("web: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def start_web(db: Database, host: str, port: int, clock: Clock = system_clock) -> ThreadingHTTPServer:
    server = make_server(db, host, port, clock)
    threading.Thread(target=server.serve_forever, name="lms-web", daemon=True).start()
    return server
