"""Webhooks against a real HTTP receiver started by the test (tests/support/webhook_receiver.py),
delivered by our Dramatiq worker: the receiver verifies every signature; a receiver answering
500 gets the same event again with backoff, later events waiting behind it; after N attempts a
delivery is dead, visible in ``lms ops status``, and ``lms ops retry --webhook`` delivers it
once; a receiver that is down for a while gets every event in order once it is back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake.parsing.adf import parse_adf
from lms.cli import main
from models.dealer_config import ConfigError, validate_config
from models.webhook_tables import WebhookDelivery
from tests.support.services import free_port, wait_until
from tests.support.speed import SpeedStack, dealer_file
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "a-long-shared-secret-for-the-crm"


def hook(url: str, events: list[str], *, name: str = "crm", format: str = "json") -> str:
    return (
        "[[dealers.webhooks]]\n"
        f'name = "{name}"\nurl = "{url}"\nevents = {json.dumps(events)}\n'
        f'secret = "{SECRET}"\nformat = "{format}"\n'
    )


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(free_port(), SECRET).start()
    yield server
    server.stop()


def make_stack(db_url: str, tmp_path: Path, hooks: str, **settings: object) -> SpeedStack:
    config = dealer_file(tmp_path / "dealer.toml", hooks)
    return SpeedStack(
        db_url,
        outbox=tmp_path / "outbox",
        config=config,
        start="2026-11-30T09:00",
        worker_threads=1,
        **settings,
    )


def deliveries(speed: SpeedStack, subscription: str = "crm") -> list[WebhookDelivery]:
    with speed.db.read() as session:
        return list(
            session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.subscription == subscription)
                .order_by(WebhookDelivery.id)
            )
        )


def later(speed: SpeedStack, seconds: float) -> None:
    """Time passes; the sweeper (as the scheduler runs it) hands on what is due now."""
    speed.clock.advance(timedelta(seconds=seconds))
    speed.runtime.sweep_once()


ALL = ["lead.created", "lead.assigned", "lead.answered", "lead.completed", "lead.escalated"]


def test_signed_events_retried_while_the_receiver_answers_500_and_then_in_order(
    db_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    adf = WebhookReceiver(free_port(), SECRET, path="/adf").start()
    speed = make_stack(
        db_url,
        tmp_path,
        hook(receiver.url, ALL) + hook(adf.url, ["lead.created"], name="dms", format="adf"),
    )
    try:
        receiver.status = 500
        lead = speed.arrive("2026-11-30T09:00", sender="Erika Mustermann <erika@example.org>")
        # lead.created and lead.assigned (to anna) were written with the lead; the first is tried
        # at once and refused, the second waits behind it.
        wait_until(lambda: receiver.seen(), what="the first attempt")
        first, second = deliveries(speed)
        assert (first.event, second.event) == ("lead.created", "lead.assigned")
        wait_until(lambda: deliveries(speed)[0].state == "queued", what="the failure recorded")
        first, second = deliveries(speed)
        assert (first.attempts, first.last_status, second.attempts) == (1, 500, 0)
        assert all(r.verified for r in receiver.seen()), "every request carries a valid signature"

        speed.reply(lead, speed.clock() + timedelta(seconds=5))  # lead.answered joins the queue
        later(speed, 10)  # within the backoff: nothing is tried
        assert len(receiver.seen()) == 1
        later(speed, 25)  # 30 s after the first attempt: the second
        wait_until(lambda: deliveries(speed)[0].attempts == 2 and deliveries(speed)[0].state == "queued")
        assert deliveries(speed)[0].next_attempt_at == speed.clock() + timedelta(seconds=60)

        receiver.status = 200
        later(speed, 61)
        wait_until(lambda: len(receiver.taken()) == 3, what="all three events")
        taken = receiver.taken()
        assert [r.event for r in taken] == ["lead.created", "lead.assigned", "lead.answered"]
        assert [r.event_id for r in taken] == [d.event_id for d in deliveries(speed)]
        # The idempotency key is the same on every attempt of an event.
        assert [r.event_id for r in receiver.seen()[:3]] == [taken[0].event_id] * 3
        body = taken[0].json
        assert body["type"] == "lead.created" and body["id"] == taken[0].event_id
        shown = body["data"]["lead"]
        assert shown["id"] == lead and shown["dealer"] == "muster" and shown["editor"] == "anna"
        assert shown["contact"]["email"] == "erika@example.org"
        assert {"status", "type", "source", "vehicle", "created_at", "due_at", "activities"} <= set(shown)
        answered = taken[2].json["data"]
        assert answered["answer"] == {"by": "anna", "first": True}
        assert answered["lead"]["activities"][-1]["kind"] == "reply"
        assert all(d.state == "delivered" for d in deliveries(speed))

        # The ADF subscription got its own copy, as XML our ADF reader understands.
        wait_until(lambda: adf.taken(), what="the ADF delivery")
        [xml] = adf.taken()
        assert xml.verified and xml.content_type.startswith("application/xml")
        [read] = parse_adf([xml.body.decode()]).enquiries
        assert read.customer.email == "erika@example.org" and read.customer.name == "Erika Mustermann"
    finally:
        speed.close()
        adf.stop()


def test_dead_after_n_attempts_shown_in_ops_status_and_replayed_once(
    db_url: str, tmp_path: Path, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    speed = make_stack(db_url, tmp_path, hook(receiver.url, ["lead.created"]), webhook_max_attempts=3)
    try:
        receiver.status = 500
        speed.arrive("2026-11-30T09:00")
        wait_until(lambda: deliveries(speed)[0].attempts == 1 and deliveries(speed)[0].state == "queued")
        later(speed, 31)
        wait_until(lambda: deliveries(speed)[0].attempts == 2 and deliveries(speed)[0].state == "queued")
        later(speed, 61)
        wait_until(lambda: deliveries(speed)[0].state == "dead", what="the delivery dead")
        [dead] = deliveries(speed)
        assert dead.attempts == 3 and dead.last_error == "the receiver answered HTTP 500"
        later(speed, 3600)
        assert len(receiver.seen()) == 3  # a dead delivery is not tried again by itself

        monkeypatch.setenv("LMS_DATABASE_URL", speed.stack.settings.database_url)
        monkeypatch.setenv("LMS_BROKER_URL", "memory://")
        runner = CliRunner()
        status = json.loads(runner.invoke(main, ["ops", "status", "--json"]).output)
        assert status["webhooks"] == {"dead": 1} and status["dead"] >= 1
        assert "webhooks: dead 1" in runner.invoke(main, ["ops", "status"]).output

        receiver.status = 200
        result = runner.invoke(main, ["ops", "retry", "--webhook", str(dead.id)])
        assert result.exit_code == 0 and "1 webhook(s)" in result.output
        later(speed, 1)
        wait_until(lambda: receiver.taken(), what="the replayed delivery")
        # The receiver has the POST before the worker records its answer: wait for that too.
        wait_until(lambda: deliveries(speed)[0].state == "delivered", what="the replay recorded")
        later(speed, 120)  # the sweeper again, and again: nothing more to send
        later(speed, 120)
        assert [r.event_id for r in receiver.taken()] == [dead.event_id]
        assert deliveries(speed)[0].state == "delivered"
        again = runner.invoke(main, ["ops", "retry", "--webhook", str(dead.id)])
        assert "0 webhook(s)" in again.output  # only dead rows are replayed
    finally:
        speed.close()


def test_a_receiver_down_for_a_while_gets_every_event_in_order_once_back(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    receiver = WebhookReceiver(port, SECRET)  # not started: down
    speed = make_stack(db_url, tmp_path, hook(receiver.url, ALL))
    try:
        first = speed.arrive("2026-11-30T09:00")  # created, assigned
        wait_until(lambda: deliveries(speed)[0].attempts == 1 and deliveries(speed)[0].state == "queued")
        assert "Connection" in (deliveries(speed)[0].last_error or "")
        speed.reply(first, "2026-11-30T09:05")  # answered
        speed.complete(first, "2026-11-30T09:06", "sold")  # completed
        second = speed.arrive("2026-11-30T09:30")  # created, assigned
        speed.escalate("2026-11-30T11:35")  # stage 1 of the second lead: escalated
        for _ in range(3):  # hours of retries into nothing
            tried = deliveries(speed)[0].attempts
            later(speed, 3600)
            wait_until(lambda tried=tried: deliveries(speed)[0].attempts > tried, what="another attempt")
        assert all(d.attempts == 0 for d in deliveries(speed)[1:]), "later events wait for the first"

        receiver.start()
        later(speed, 3600)
        wait_until(lambda: len(receiver.taken()) == 7, what="every event")
        got = [(r.json["type"], r.json["data"]["lead"]["id"]) for r in receiver.taken()]
        assert got == [
            ("lead.created", first),
            ("lead.assigned", first),
            ("lead.answered", first),
            ("lead.completed", first),
            ("lead.created", second),
            ("lead.assigned", second),
            ("lead.escalated", second),
        ]
        assert receiver.taken()[-1].json["data"]["stage"] == "stage1"
        assert all(r.verified for r in receiver.seen())
        assert [r.event_id for r in receiver.taken()] == [d.event_id for d in deliveries(speed)]
    finally:
        speed.close()
        receiver.stop()


@pytest.mark.parametrize(
    ("webhook", "key", "reason"),
    [
        (
            {"url": "http://crm.example/hook", "events": ["lead.created"], "secret": SECRET},
            "webhooks[0]",
            "https",
        ),
        (
            {"url": "https://crm.example/hook", "events": ["lead.sold"], "secret": SECRET},
            "events[0]",
            "lead.created",
        ),
        ({"url": "https://crm.example/hook", "events": ["lead.created"]}, "webhooks[0]", "exactly one"),
        (
            {"url": "https://crm.example/hook", "events": ["lead.created"], "secret": "short"},
            "webhooks[0]",
            "short",
        ),
        ({"url": "https://crm.example/hook", "events": [], "secret": SECRET}, "events", "at least 1"),
        (
            {"url": "https://crm.example/hook", "events": ["lead.created"], "secret": SECRET, "retries": 3},
            "retries",
            "unknown key",
        ),
    ],
)
def test_a_webhook_the_dealer_file_gets_wrong_is_refused_with_its_key(
    webhook: dict[str, object], key: str, reason: str
) -> None:
    dealer = {"id": "muster", "name": "Autohaus Muster", "mailboxes": ["muster@leads.example.com"]}
    with pytest.raises(ConfigError) as refused:
        validate_config({"dealers": [{**dealer, "webhooks": [webhook]}]})
    assert key in refused.value.key and reason in refused.value.reason


def test_http_is_allowed_on_loopback_only_and_secrets_are_never_shown(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    speed = make_stack(sqlite_url, tmp_path, hook("http://localhost:9/hook", ["lead.created"]))
    speed.close()
    monkeypatch.setenv("LMS_DATABASE_URL", sqlite_url)
    shown = CliRunner().invoke(main, ["config", "show", "--json"]).output
    assert SECRET not in shown and "localhost:9/hook" in shown
