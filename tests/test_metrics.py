"""/metrics after real traffic, across two processes writing into one multiprocess directory:
``lms smtp`` (an acceptor without workers: it hands mails over through the database) and
``lms run`` (workers, scheduler, the IMAP poller on a private Dovecot, the web pane and
``LMS_METRICS_LISTEN``). The counters must move by exactly what happened, read against the
database; a relay failure is made real by cutting the proxy in front of the sink."""

from __future__ import annotations

import shutil
import signal
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from models.clock import system_clock
from models.settings import Settings
from models.tables import OutboundMessage, User
from tests.support.dovecot import Dovecot
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import LmsProcess, lms_env
from tests.support.proxy import TcpProxy
from tests.support.services import REDIS_URL, free_port, require, unique, wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import DEMO_CONFIG, prepare_database
from workers import accounts
from workers.runtime import Runtime, build_runtime

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum over the series of ``name`` that carry these labels."""
    wanted = set(labels.items())
    return sum(value for (n, keys), value in found.items() if n == name and wanted <= set(keys))


@dataclass
class Installation:
    runtime: Runtime  # the test's own view of the database
    smtp_port: int
    metrics_url: str
    web_url: str
    dovecot: Dovecot
    proxy: TcpProxy
    sink: SmtpSink
    directory: Path

    def metrics(self) -> Samples:
        status, text = scrape(self.metrics_url)
        assert status == 200, text
        return samples(text)

    def outbound(self) -> list[OutboundMessage]:
        with self.runtime.db.read() as session:
            return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))

    def token(self, username: str) -> str:
        with self.runtime.db.session() as session:
            user = session.scalars(select(User).where(User.username == username)).one()
            return accounts.create_token(session, user, name="metrics test", now=system_clock())


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    tmp = tmp_path_factory.mktemp("metrics")
    require("Redis", "127.0.0.1", 6379)
    prefix = unique("lmsmetrics")
    dovecot = Dovecot().start()
    dovecot.append(enquiry(sender="Imke Imap <imke@example.org>", subject="Anfrage per IMAP"))
    for asset in ("header.png", "expose.pdf"):
        shutil.copy(DEMO_CONFIG.parent / asset, tmp / asset)
    config = tmp / "lms.toml"
    config.write_text(DEMO_CONFIG.read_text() + dovecot.imap_toml())
    sink = SmtpSink(free_port()).start()
    proxy = TcpProxy("127.0.0.1", sink.port)
    url = f"sqlite:///{tmp}/lms.db"
    runtime = build_runtime(Settings(database_url=url, relay_url="maildir:///nowhere"))
    prepare_database(runtime, config)
    directory = tmp / "metrics"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"\0" * 8)  # left by an earlier run
    smtp_port, metrics_port, web_port = free_port(), free_port(), free_port()
    common = {
        "database_url": url,
        "relay_url": f"smtp://127.0.0.1:{proxy.port}",
        "relay_timeout": "5",
        "metrics_dir": str(directory),
        # The acceptor hands mails to the workers of `lms run` through Redis.
        "broker_url": REDIS_URL,
        "queue_prefix": prefix,
    }
    acceptor = LmsProcess(
        "smtp",
        env=lms_env(smtp_listen=f"127.0.0.1:{smtp_port}", **common),
        log=tmp / "smtp.log",
        cwd=tmp,
    )
    # The acceptor first: it empties the directory; `lms run` then joins it and serves it.
    wait_until(lambda: any(directory.glob("counter_*.db")) and not (directory / "counter_999999.db").exists())
    everything = LmsProcess(
        "run",
        env=lms_env(
            smtp_listen=f"127.0.0.1:{free_port()}",
            web_listen=f"127.0.0.1:{web_port}",
            metrics_listen=f"127.0.0.1:{metrics_port}",
            config=str(config),
            **common,
        ),
        log=tmp / "run.log",
        cwd=tmp,
    )
    found = Installation(
        runtime,
        smtp_port,
        f"http://127.0.0.1:{metrics_port}/metrics",
        f"http://127.0.0.1:{web_port}",
        dovecot,
        proxy,
        sink,
        directory,
    )
    try:
        wait_until(lambda: _answers(found.metrics_url), what="lms run's metrics listener")
        yield found
    finally:
        for process in (everything, acceptor):  # both stop at once
            process.proc.send_signal(signal.SIGTERM)
        everything.stop()
        acceptor.stop()
        proxy.close()
        sink.stop()
        runtime.close()
        dovecot.stop()
        dovecot.cleanup()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"dramatiq:{prefix}*"):
            client.delete(key)


def _answers(url: str) -> bool:
    try:
        return scrape(url)[0] == 200
    except OSError:
        return False


def send(port: int, raw: bytes, to: str = DEMO_MAILBOX) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("sender@example.org", [to], raw)


def test_counters_move_by_exactly_what_happened(installation: Installation) -> None:
    inst = installation
    # The IMAP mail, taken by `lms run` at its start, becomes a lead with its mails sent.
    wait_until(lambda: total(inst.metrics(), "lms_imap_mails_taken_total") == 1, what="the IMAP mail")
    wait_until(lambda: all(o.state == "sent" for o in inst.outbound()) and inst.outbound(), what="sent")
    before = inst.metrics()
    assert total(before, "lms_imap_mails_taken_total", dealer="muster", mailbox="leads") == 1
    assert total(before, "lms_imap_last_success_timestamp_seconds", dealer="muster", mailbox="leads") > 0

    leads = [enquiry(sender=f"Kunde {i} <kunde{i}@example.org>", subject=f"Golf {i}") for i in range(2)]
    robot = enquiry(sender="Urlaub <bot@example.org>", headers={"Auto-Submitted": "auto-replied"})
    for raw in [*leads, robot]:
        send(inst.smtp_port, raw)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(inst.smtp_port, enquiry(), to="nobody@leads.example.com")
    wait_until(lambda: total(inst.metrics(), "lms_inbound_total") == 4, what="ingest of the SMTP mails")
    wait_until(lambda: all(o.state == "sent" for o in inst.outbound()), what="their mails sent")

    # The relay goes away: the next lead's mails fail with no reply and wait for their retry.
    inst.proxy.cut()
    final = enquiry(sender="Letzte <letzte@example.org>", subject="Passat")
    try:
        sent_before = len(inst.outbound())
        send(inst.smtp_port, final)
        wait_until(
            lambda: (
                len(inst.outbound()) > sent_before
                and all(o.attempts >= 1 and o.state == "queued" for o in inst.outbound()[sent_before:])
            ),
            what="failed attempts",
        )
        after = inst.metrics()
        rows = inst.outbound()
    finally:
        inst.proxy.restore()

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    accepted = [*leads, robot, final]
    assert moved("lms_smtp_connections_total", listener="smtp") == 5  # four accepted, one refused at RCPT
    assert moved("lms_smtp_mails_accepted_total", listener="smtp") == 4
    assert moved("lms_smtp_mails_refused_total", listener="smtp", code="550") == 1
    assert moved("lms_smtp_mails_refused_total") == 1
    assert moved("lms_smtp_accept_seconds_count", listener="smtp") == 4
    assert moved("lms_smtp_received_bytes_total", listener="smtp") == sum(len(raw) for raw in accepted)
    last = rows[sent_before:]
    assert moved("lms_inbound_total", state="processed", reason="lead") == 3
    assert moved("lms_inbound_total", state="ignored", reason="auto_reply") == 1
    assert moved("lms_inbound_total") == 4
    assert moved("lms_leads_created_total", dealer="muster") == 3
    assert moved("lms_lead_routed_seconds_count") == 3
    # Every mail sent is one 250 of the relay; every failed attempt one reply that never came.
    sent = [o for o in rows if o.state == "sent"]
    for kind in {o.kind for o in sent}:
        assert total(after, "lms_outbound_total", kind=kind, state="sent") == sum(
            o.kind == kind for o in sent
        )
    assert total(after, "lms_relay_replies_total", code="250") == len(sent)
    assert total(after, "lms_relay_replies_total", code="connection") == sum(o.attempts for o in last)
    assert total(after, "lms_autoresponse_relayed_seconds_count") == sum(
        o.kind == "autoresponse" for o in sent
    )
    assert total(after, "lms_dead_letters_total") == 0
    # The database's truth: the failed mails are pending, and the scheduler beats.
    assert total(after, "lms_queue_depth", queue="outbound") == len(last)
    assert total(after, "lms_queue_depth", queue="inbound") == 0
    assert total(after, "lms_queue_oldest_pending_seconds", queue="outbound") > 0  # they wait
    assert total(after, "lms_imap_errors_total") == 0  # the mailbox worked all along
    assert moved("lms_escalations_fired_total") == 0  # nothing was due
    assert total(after, "lms_scheduler_last_pass_timestamp_seconds") > time.time() - 60  # beating now
    assert total(after, "lms_scheduler_pass_seconds_count") > 0


def test_labels_carry_no_addresses(installation: Installation) -> None:
    status, text = scrape(installation.metrics_url)
    assert status == 200 and "lms_smtp_connections_total" in text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for value in sample.labels.values():
                assert "@" not in value, (sample.name, sample.labels)
    assert "example.org" not in text and "leads.example.com" not in text


def test_metrics_on_the_web_listener_want_an_admin_token(installation: Installation) -> None:
    url = f"{installation.web_url}/metrics"
    assert scrape(url)[0] == 401
    assert scrape(url, "not-a-token")[0] == 401
    assert scrape(url, installation.token("anna"))[0] == 403  # a seller
    status, text = scrape(url, installation.token("olga"))  # the dealer's admin
    assert status == 200
    found = samples(text)
    assert total(found, "lms_imap_mails_taken_total", dealer="muster") == 1
    assert ("lms_queue_depth", (("queue", "inbound"),)) in found
