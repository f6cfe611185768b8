"""The production shape: separate processes over PostgreSQL with Redis or RabbitMQ."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from intake.store import store_message
from models.settings import Settings
from models.tables import OutboundMessage
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import ROOT, LmsProcess, lms, lms_env, lms_here
from tests.support.services import AMQP_URL, REDIS_URL, free_port, require, unique, wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import Stack, prepare_database
from workers.runtime import build_runtime


@pytest.fixture
def redis_url() -> Iterator[str]:
    require("Redis", "127.0.0.1", 6379)
    yield REDIS_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = unique("lmstest")
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"dramatiq:{name}*"):
        client.delete(key)


def psql_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


def test_separate_smtp_and_worker_processes_on_postgres_and_redis(
    pg_url: str, redis_url: str, prefix: str, sink: SmtpSink, tmp_path: Path
) -> None:
    smtp_port = free_port()
    env = lms_env(
        database_url=pg_url,
        broker_url=redis_url,
        queue_prefix=prefix,
        relay_url=sink.url,
        smtp_listen=f"127.0.0.1:{smtp_port}",
    )
    # Migrated and configured in the test's process; the intake and the workers are processes.
    assert lms_here("migrate", env=env).exit_code == 0
    assert lms_here("config", "apply", str(ROOT / "examples" / "lms.toml"), env=env).exit_code == 0
    workers = [
        LmsProcess("worker", "--threads", "2", env=env, log=tmp_path / f"worker{i}.log") for i in (1, 2)
    ]
    intake = LmsProcess("smtp", env=env, log=tmp_path / "smtp.log")
    try:
        import smtplib

        def send() -> bool:
            try:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                    client.sendmail("erika@example.org", [DEMO_MAILBOX], enquiry())
                return True
            except OSError:
                return False  # the intake is still starting

        wait_until(send, what="the SMTP intake to accept a mail")
        wait_until(lambda: sink.to("erika@example.org"), timeout=30, what="the autoresponse at the sink")
        result = lms("leads", "list", "--json", env=env)
        import json

        data = json.loads(result.stdout)
        assert data["total"] == 1 and data["leads"][0]["editor"] == "anna"
        assert len(sink.to("erika@example.org")) == 1
    finally:
        assert intake.stop() == 0, intake.log()
        for w in workers:
            assert w.stop() == 0, w.log()


def test_a_worker_killed_in_the_middle_of_ingest_leaves_one_lead_and_one_answer(
    pg_url: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    settings = dict(
        database_url=pg_url,
        broker_url=redis_url,
        queue_prefix=prefix,
        relay_url=f"maildir://{outbox}",
        sweep_grace_seconds="0",
    )
    env = lms_env(**settings)
    runtime = build_runtime(Settings(**settings))  # type: ignore[arg-type]
    prepare_database(runtime)
    worker = LmsProcess("worker", "--threads", "1", env=env, log=tmp_path / "worker1.log")
    lock = psycopg.connect(psql_url(pg_url))
    try:
        # Hold the leads table so the worker's transaction stops half-way, inside ingest.
        lock.execute("LOCK TABLE leads IN EXCLUSIVE MODE")
        [stored] = store_message(
            runtime.db,
            enquiry(),
            envelope_from="erika@example.org",
            recipients=[DEMO_MAILBOX],
            via="smtp",
            now=runtime.clock(),
            enqueue=runtime.enqueue_ingest,
            grace=runtime.grace,
        )

        def worker_waits_on_the_lock() -> bool:
            with psycopg.connect(psql_url(pg_url)) as probe:
                row = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO leads%'"
                ).fetchone()
                return bool(row and row[0])

        wait_until(worker_waits_on_the_lock, timeout=30, what="the worker to block inside ingest")
        worker.kill()
        lock.rollback()

        [row] = [r for r in _inbound_states(runtime)]
        assert row == (stored.id, "received")  # nothing half-done is visible

        restarted = LmsProcess("worker", "--threads", "2", env=env, log=tmp_path / "worker2.log")
        try:
            assert lms("scheduler", "--once", env=env).returncode == 0  # the sweeper at start
            wait_until(lambda: _sent(runtime) == 3, timeout=30, what="answer, forward, notification sent")
            # Redis hands the killed worker's message out again later: simulate it now.
            runtime.ingest(stored.id)
            for outbound_id in _outbound_ids(runtime):
                runtime.send(outbound_id)
        finally:
            assert restarted.stop() == 0, restarted.log()
        with runtime.db.session() as session:
            from sqlalchemy import func, select

            from models.tables import Lead

            assert session.scalar(select(func.count()).select_from(Lead)) == 1
        assert len(_outbound_ids(runtime)) == 3  # one answer, one forward, one notification
        assert len(mailbox.Maildir(str(outbox), create=False)) == 3
    finally:
        lock.close()
        worker.stop()
        runtime.close()


def _inbound_states(runtime: object) -> list[tuple[int, str]]:
    from sqlalchemy import select

    from models.tables import InboundMessage

    with runtime.db.session() as session:  # type: ignore[attr-defined]
        return [(r.id, r.state) for r in session.scalars(select(InboundMessage))]


def _outbound_ids(runtime: object) -> list[int]:
    from sqlalchemy import select

    with runtime.db.session() as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(OutboundMessage.id)))


def _sent(runtime: object) -> int:
    from sqlalchemy import func, select

    with runtime.db.session() as session:  # type: ignore[attr-defined]
        return int(
            session.scalar(
                select(func.count()).select_from(OutboundMessage).where(OutboundMessage.state == "sent")
            )
            or 0
        )


def test_the_pipeline_on_rabbitmq(pg_url: str, sink: SmtpSink) -> None:
    require("RabbitMQ", "127.0.0.1", 5672)
    stack = Stack(pg_url, relay_url=sink.url, broker_url=AMQP_URL)
    try:
        stack.send(enquiry())
        wait_until(lambda: sink.to("erika@example.org"), timeout=30, what="the autoresponse via RabbitMQ")
        assert len(stack.leads()) == 1
    finally:
        broker = stack.runtime.broker
        queues = list(broker.get_declared_queues())
        stack.close()
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        for queue in queues:
            for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
                channel.queue_delete(name)
        connection.close()
