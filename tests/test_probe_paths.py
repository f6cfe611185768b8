"""The end-to-end probe's other paths (issue 14), in the test process: via IMAP (appended to the
private Dovecot, taken by the real poller, removed from the mailbox again), periodically from
the scheduler (sends, never waits; finishes on a later pass; a run nobody waits for becomes a
timeout), and the check at configuration load that via = "imap" names a polled mailbox."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.imap import ImapPoller, accounts_from
from models.clock import system_clock
from models.dealer_config import ConfigError, load_config_file
from models.ops_tables import ProbeRun
from models.tables import Contact, Dealer, InboundMessage, Lead, OutboundMessage
from tests.support.dovecot import USER, Dovecot
from tests.support.services import wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import Stack
from tests.support.stack import demo_config_with as _config
from workers.probe import PeriodicProbes, run_probe, state_of


def _nothing_left(stack: Stack) -> None:
    for model in (Lead, InboundMessage, OutboundMessage, Contact):
        assert stack.count(model) == 0, model.__name__


def test_a_probe_via_imap_is_taken_by_the_poller_and_removed_from_the_mailbox(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot, sink: SmtpSink
) -> None:
    config = _config(
        tmp_path, dovecot.imap_toml() + f'\n[dealers.monitoring.probe]\nvia = "imap"\nmailbox = "{USER}"\n'
    )
    stack = Stack(sqlite_url, relay_url=sink.url, smtp=False, config=config)
    with stack.db.session() as session:
        [account] = accounts_from(list(session.scalars(select(Dealer))))
    poller = ImapPoller(account, stack.db, enqueue=stack.runtime.enqueue_ingest, backoff_max=1.0)
    poller.start()
    try:
        wait_until(poller.idling.is_set, what="the poller idling")
        result = run_probe(stack.db, stack.settings, "muster", timeout=20)
        assert result.state == "ok" and result.via == "imap", result
        assert result.seconds is not None and result.seconds > 0
        assert result.removed == {
            "leads": 1,
            "inbound": 1,
            "outbound": 0,
            "webhooks": 0,
            "contacts": 1,
            "imap": 1,
        }
        _nothing_left(stack)
        assert dovecot.folder() == {}  # the probe's own mail is gone from the dealer's mailbox
        assert sink.messages == []  # nothing answered, forwarded or announced
    finally:
        poller.stop()
        stack.close()


def test_the_scheduler_probes_periodically_without_waiting_and_times_out_forgotten_runs(
    pg_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    # On PostgreSQL (the probe against `lms run` covers SQLite).
    config = _config(tmp_path, '\n[dealers.monitoring.probe]\nevery = "1m"\ntimeout = "30s"\n')
    stack = Stack(pg_url, relay_url=sink.url, config=config)
    try:
        settings = stack.settings.model_copy(update={"smtp_listen": f"127.0.0.1:{stack.smtp_port}"})
        now = system_clock()
        with stack.db.session() as session:  # a run whose prober died 20 minutes ago
            session.add(
                ProbeRun(
                    dealer_id="muster", token="f" * 32, via="smtp", started_at=now - timedelta(minutes=20)
                )
            )
        probes = PeriodicProbes(stack.db, settings)
        held = threading.Lock()  # ingest waits on it: the probe mail cannot become a lead yet
        stack.runtime.ingest_gate = held
        with held:
            [run_id] = probes.once(now)  # sent; the pass returns without waiting for the lead
            assert state_of(stack.db, run_id).state == "waiting"  # type: ignore[union-attr]
        wait_until(lambda: state_of(stack.db, run_id).state == "ok", what="the probe lead")  # type: ignore[union-attr]
        assert stack.count(Lead, format="probe") == 1
        assert probes.once(now + timedelta(seconds=5)) == []  # finished: removed, nothing due yet
        _nothing_left(stack)
        assert probes.once(now + timedelta(seconds=61)) != []  # due again after `every`
        with stack.db.read() as session:
            states = {
                token: state for token, state in session.execute(select(ProbeRun.token, ProbeRun.state))
            }
            assert states["f" * 32] == "timeout"
            assert (
                session.scalar(select(func.count()).select_from(ProbeRun).where(ProbeRun.state == "ok")) >= 1
            )
        assert sink.messages == []
    finally:
        stack.close()


def test_a_probe_via_imap_must_name_a_polled_mailbox(tmp_path: Path) -> None:
    path = _config(tmp_path, '\n[dealers.monitoring.probe]\nvia = "imap"\nmailbox = "nobody"\n')
    with pytest.raises(ConfigError) as refused:
        load_config_file(path)
    assert "no [[dealers.imap]] entry with user 'nobody'" in str(refused.value)
