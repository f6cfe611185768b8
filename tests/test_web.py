"""The read-only JSON API over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intake.store import store_message
from lms.web import make_server
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.proxy import TcpProxy
from tests.support.services import free_port
from tests.support.stack import Stack


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[Stack, int]]:
    stack = Stack(db_url, relay_url=f"maildir://{tmp_path}/outbox", smtp=False, worker_threads=None)
    port = free_port()
    server = make_server(stack.db, "127.0.0.1", port, stack.runtime.clock)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield stack, port
    server.shutdown()
    server.server_close()
    stack.close()


def test_leads_and_status_over_http(served: tuple[Stack, int]) -> None:
    stack, port = served
    [stored] = store_message(
        stack.db,
        enquiry(subject="Probefahrt Golf"),
        envelope_from="erika@example.org",
        recipients=[DEMO_MAILBOX],
        via="smtp",
        now=stack.runtime.clock(),
    )
    stack.runtime.ingest(stored.id)
    assert get(port, "/healthz") == (200, {"ok": True})
    status, listed = get(port, "/api/leads?search=erika&status=open")
    assert status == 200 and listed["total"] == 1
    lead = listed["leads"][0]
    assert lead["type"] == "test_drive" and lead["editor"] == "anna" and lead["due_state"] in ("none", "soon")
    status, shown = get(port, f"/api/leads/{lead['id']}")
    assert status == 200 and [a["kind"] for a in shown["activities"]][:2] == ["received", "assigned"]
    status, ops = get(port, "/api/ops/status")
    assert status == 200 and ops["inbound"] == {"processed": 1}
    assert get(port, "/api/leads?search=nobody")[1]["total"] == 0
    assert get(port, "/api/leads/999") == (404, {"error": "no lead 999"})
    assert get(port, "/api/leads?limit=0")[0] == 400
    assert get(port, "/nothing")[0] == 404


def test_a_database_outage_is_a_503_not_a_traceback(pg_url: str, tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    stack = Stack(
        pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
        relay_url=f"maildir://{tmp_path}/o",
        smtp=False,
        worker_threads=None,
    )
    port = free_port()
    server = make_server(stack.db, "127.0.0.1", port, stack.runtime.clock)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert get(port, "/healthz")[0] == 200
        proxy.cut()
        status, body = get(port, "/healthz")
        assert status == 503 and "error" in body and "Traceback" not in json.dumps(body)
        proxy.restore()
        assert get(port, "/healthz")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        stack.close()
        proxy.close()


def test_paging_counts_everything_and_returns_one_page_most_recent_first(served: tuple[Stack, int]) -> None:
    stack, port = served
    for n in range(3):
        [stored] = store_message(
            stack.db,
            enquiry(sender=f"kunde{n}@example.org"),
            envelope_from="",
            recipients=[DEMO_MAILBOX],
            via="smtp",
            now=stack.runtime.clock(),
        )
        stack.runtime.ingest(stored.id)
    first = get(port, "/api/leads?limit=2")[1]
    rest = get(port, "/api/leads?limit=2&offset=2")[1]
    assert first["total"] == rest["total"] == 3
    assert [lead["contact"]["email"] for lead in first["leads"] + rest["leads"]] == [
        "kunde2@example.org",
        "kunde1@example.org",
        "kunde0@example.org",
    ]
    overdue = get(port, "/api/leads?due=overdue&limit=1")[1]  # nothing is due yet: the demo gives 2 h
    assert overdue == {"leads": [], "total": 0}
