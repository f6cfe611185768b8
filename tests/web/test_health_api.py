"""Liveness, readiness and the health verdict over HTTP, as a load balancer, an orchestrator
and a monitoring system ask them."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from models.db import Database
from models.health_facts import health_verdict, thresholds_from
from models.ops_tables import ProbeRun
from models.settings import Settings
from models.tables import User
from tests.support.proxy import TcpProxy
from tests.support.services import REDIS_URL, free_port, require
from tests.web.conftest import WebStack
from web.context import WebContext
from web.server import WebServer
from workers import accounts
from workers.heartbeat import beat


def test_readiness_names_the_database_or_broker_that_does_not_answer(
    web_sqlite: WebStack, pg_url: str
) -> None:
    client = web_sqlite.client()
    assert client.get("/readyz").json() == {"ready": True}
    web_sqlite.ctx.broker_url = REDIS_URL
    require("Redis", "127.0.0.1", 6379)
    assert client.get("/readyz").status_code == 200
    web_sqlite.ctx.broker_url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json()["ready"] is False
    [reason] = down.json()["reasons"]
    assert reason == "broker: ConnectionError"  # public: no host, port or server words

    # PostgreSQL behind a TCP proxy we cut: readiness fails, liveness does not ask it.
    proxy = TcpProxy("127.0.0.1", 5432)
    db = Database(pg_url.replace(":5432/", f":{proxy.port}/"), connect_timeout_seconds=3)
    server = WebServer(WebContext(db=db), "127.0.0.1", free_port()).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as pane:
            assert pane.get("/readyz").json() == {"ready": True}
            proxy.cut()
            cut = pane.get("/readyz")
            assert cut.status_code == 503 and cut.json()["reasons"] == ["database: OperationalError"]
            assert pane.get("/healthz").json() == {"ok": True}
            proxy.restore()
            assert pane.get("/readyz").status_code == 200
    finally:
        server.stop()
        db.dispose()
        proxy.close()


def test_the_health_verdict_is_for_admins_and_their_dealer(web_sqlite: WebStack) -> None:
    web = web_sqlite
    web.ctx.health_limits = thresholds_from(Settings())
    anna = web.sign_in("muster", "anna")
    assert anna.get("/api/ops/health").status_code == 404  # admins only, like ops status
    olga = web.sign_in("muster", "olga")
    never = olga.get("/api/ops/health").json()
    assert never["healthy"] is False and [i["check"] for i in never["issues"]] == ["scheduler_stalled"]
    now = web.clock()
    beat(web.db, "scheduler", now, now, lag=0.0, interval=15.0)
    with web.db.session() as session:  # the other dealer has a problem of its own
        session.add(
            ProbeRun(
                dealer_id="other",
                token="e" * 32,
                via="smtp",
                started_at=now,
                finished_at=now,
                state="timeout",
            )
        )
    with web.db.read() as session:
        everything = health_verdict(session, now=now, limits=thresholds_from(Settings()))
    assert [(i.check, i.dealer) for i in everything.issues] == [("probe_failing", "other")]
    assert olga.get("/api/ops/health").json()["healthy"] is True  # never another dealer's issues
    # With a personal API token, as a monitoring system would ask.
    with web.db.session() as session:
        admin = session.scalars(select(User).where(User.username == "olga")).one()
        token = accounts.create_token(session, admin, name="monitoring", now=now)
    body = web.client(headers={"Authorization": f"Bearer {token}"}).get("/api/ops/health").json()
    assert body["healthy"] is True and body["status"] == "ok" and body["issues"] == []
