"""The health verdict (``lms ops health``): each test makes one condition real, over our real
stack and services, and checks the verdict and the exit code a monitoring system would see."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from intake.imap import ImapPoller, accounts_from
from lms.cli import main
from models.dealer_config import ExpectationConfig, LeadFloor
from models.health import Thresholds, Verdict
from models.health_facts import health_verdict
from models.ops_tables import Heartbeat
from models.silence import expectation_issue, floor_issues, last_closed_window
from models.tables import Dealer, ImapStatus, Lead, OutboundMessage
from tests.support.clock import FakeClock
from tests.support.dovecot import Dovecot
from tests.support.mails import enquiry
from tests.support.services import free_port, wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import DEMO_CONFIG, Stack
from tests.support.stack import demo_config_with as config_with
from workers.heartbeat import beat
from workers.runtime import Scheduler

BERLIN = "Europe/Berlin"
LIMITS = Thresholds()


def judge(stack: Stack, now: datetime | None = None) -> Verdict:
    with stack.db.read() as session:
        return health_verdict(session, now=now or stack.runtime.clock(), limits=LIMITS)


def checks(verdict: Verdict) -> set[str]:
    return {issue.check for issue in verdict.issues}


def scheduler_ran(stack: Stack) -> None:
    """A scheduler pass at the stack's now, as `lms run`'s scheduler makes one every few seconds:
    due escalations fired and their mails sent, and the heartbeat written."""
    stack.runtime.escalate_once()
    wait_until(
        lambda: all(
            m.state in ("sent", "failed", "dead", "expired") or m.last_error for m in stack.outbound()
        ),
        what="the outgoing mails handled",
    )
    now = stack.runtime.clock()
    beat(stack.db, "scheduler", now, now, lag=0.0, interval=15.0)


def health_cli(database_url: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["ops", "health", "--json"], env={"LMS_DATABASE_URL": database_url})
    return result.exit_code, json.loads(result.stdout)


def new_customer(stack: Stack, n: int) -> None:
    before = stack.count(Lead)
    stack.send(enquiry(sender=f"Kunde {n} <kunde{n}@example.org>", subject=f"Anfrage Golf {n}"))
    wait_until(lambda: stack.count(Lead) > before, what=f"lead of customer {n}")


# -- the rules alone ------------------------------------------------------------------------


def test_a_floor_is_judged_on_its_last_closed_window_of_a_working_day() -> None:
    policy_cal = _calendar()
    floor = LeadFloor(count=3, hours="09:00-18:00")
    # Thursday 2026-12-24 is a closed day, Friday 25th and Saturday 26th public holidays (DE-BY):
    # on Sunday evening the last closed window is Wednesday's.
    start, end = last_closed_window(floor, policy_cal, datetime(2026, 12, 27, 20, 0, tzinfo=UTC))  # type: ignore[misc]
    assert start.isoformat() == "2026-12-23T09:00:00+01:00" and end.isoformat() == "2026-12-23T18:00:00+01:00"
    counted: list[tuple[datetime, datetime]] = []

    def two(s: datetime, e: datetime) -> int:
        counted.append((s, e))
        return 2

    issues = floor_issues(
        "muster",
        [floor],
        policy_cal,
        now=datetime(2026, 12, 27, 20, 0, tzinfo=UTC),
        count=two,
        since=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert [i.check for i in issues] == ["leads_below_floor"] and issues[0].severity == "critical"
    assert "2 lead(s) on 2026-12-23 between 09:00-18:00, at least 3" in issues[0].message
    assert counted == [(start, end)]
    # A dealer whose mail started flowing after that window is not judged on it.
    assert not floor_issues(
        "muster",
        [floor],
        policy_cal,
        now=datetime(2026, 12, 27, 20, 0, tzinfo=UTC),
        count=two,
        since=datetime(2026, 12, 24, tzinfo=UTC),
    )


def test_the_expectation_compares_the_same_local_hour_weeks_ago_across_a_dst_change() -> None:
    cal = _calendar()
    seen: list[tuple[str, str]] = []
    # Monday 2026-11-02 11:00 in Berlin (CET); four weeks earlier was still CEST (until 25 Oct).
    now = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

    def count(start: datetime, end: datetime) -> int:
        local = (
            start.astimezone(cal.zone).strftime("%m-%d %H:%M"),
            end.astimezone(cal.zone).strftime("%H:%M"),
        )
        seen.append(local)
        return 0 if end >= now - timedelta(hours=1) else 6

    config = ExpectationConfig(weeks=4, window="3h", ratio=0.3, min_expected=3)
    issue = expectation_issue(
        "muster", config, cal, now=now, count=count, since=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert (
        issue is not None
        and issue.severity == "warning"
        and issue.data == {"leads": 0, "expected": 6, "weeks": 4}
    )
    assert seen[:4] == [
        ("10-26 08:00", "11:00"),
        ("10-19 08:00", "11:00"),
        ("10-12 08:00", "11:00"),
        ("10-05 08:00", "11:00"),
    ]
    # Only two weeks of history: the mean is over those two.
    short = expectation_issue(
        "muster", config, cal, now=now, count=count, since=datetime(2026, 10, 13, tzinfo=UTC)
    )
    assert short is not None and short.data["weeks"] == 2
    # A dealer that usually gets fewer than min_expected is never judged (chance, not silence).
    quiet = ExpectationConfig(weeks=4, window="3h", ratio=0.3, min_expected=7)
    assert (
        expectation_issue("muster", quiet, cal, now=now, count=count, since=datetime(2026, 1, 1, tzinfo=UTC))
        is None
    )


def test_the_expectation_keeps_quiet_on_holidays_and_leaves_them_out_of_the_mean() -> None:
    cal = _calendar()
    since = datetime(2026, 1, 1, tzinfo=UTC)
    holidays = (25, 1)  # Christmas Day and New Year's Day (DE-BY)

    def count(start: datetime, end: datetime) -> int:
        return 0 if end.astimezone(cal.zone).day in (*holidays, 15) else 4

    two = ExpectationConfig(weeks=2, window="3h", ratio=0.5, min_expected=2)
    # Friday 2026-12-25 itself: fewer leads than usual is no alarm.
    christmas = datetime(2026, 12, 25, 10, tzinfo=UTC)
    assert expectation_issue("muster", two, cal, now=christmas, count=count, since=since) is None
    # Friday 2027-01-08: both Fridays before were holidays, no normal example: no expectation.
    assert (
        expectation_issue(
            "muster", two, cal, now=datetime(2027, 1, 8, 10, tzinfo=UTC), count=count, since=since
        )
        is None
    )
    # Friday 2027-01-15 (no leads): the mean is over the one normal Friday, not the holidays.
    three = ExpectationConfig(weeks=3, window="3h", ratio=0.5, min_expected=2)
    issue = expectation_issue(
        "muster", three, cal, now=datetime(2027, 1, 15, 10, tzinfo=UTC), count=count, since=since
    )
    assert issue is not None and issue.data == {"leads": 0, "expected": 4, "weeks": 1}


def _calendar():  # type: ignore[no-untyped-def]
    from models.business_calendar import BusinessCalendar
    from models.dealer_config import load_config_file

    [dealer] = load_config_file(DEMO_CONFIG).dealers
    return BusinessCalendar.from_schema(dealer.timezone, dealer.hours)


# -- the conditions made real ---------------------------------------------------------------


def test_a_stopped_relay_makes_the_verdict_critical_with_exit_code_2(sqlite_url: str) -> None:
    relay = SmtpSink(free_port()).start()
    relay_url = relay.url
    stack = Stack(sqlite_url, relay_url=relay_url)
    try:
        scheduler_ran(stack)
        new_customer(stack, 1)
        wait_until(lambda: len(relay.messages) >= 3, what="the first lead's three mails")
        code, body = health_cli(sqlite_url)
        assert (code, body["healthy"], body["status"], body["issues"]) == (0, True, "ok", [])

        relay.stop()  # the relay is gone: the next lead's mails are refused at connect
        new_customer(stack, 2)
        wait_until(lambda: any(m.last_error for m in stack.outbound()), what="a send attempt that failed")
        scheduler_ran(stack)
        code, body = health_cli(sqlite_url)
        [issue] = [i for i in body["issues"] if i["check"] == "relay_failures"]
        assert code == 2 and body["healthy"] is False and body["status"] == "critical"
        assert issue["severity"] == "critical" and "not taken by the relay" in issue["message"]
        with stack.db.read() as session:
            failing = [m for m in session.scalars(select(OutboundMessage)) if m.last_error]
        assert issue["data"]["count"] == len(failing) >= 1
        # The human form says the same in one line per issue.
        human = CliRunner().invoke(main, ["ops", "health"], env={"LMS_DATABASE_URL": sqlite_url})
        assert (
            human.exit_code == 2 and human.stdout.startswith("CRITICAL") and "relay_failures" in human.stdout
        )
        # A check with a mistyped dealer must not stay green: UNKNOWN (3), one sentence.
        typo = CliRunner().invoke(
            main, ["ops", "health", "--dealer", "mustr"], env={"LMS_DATABASE_URL": sqlite_url}
        )
        assert typo.exit_code == 3
        assert typo.stderr.strip() == "error: no dealer 'mustr' (lms config show lists them)"
    finally:
        stack.close()
        relay.stop()


def test_a_stalled_scheduler_is_critical_after_two_intervals(sqlite_url: str) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    stack = Stack(
        sqlite_url,
        relay_url="maildir:///nonexistent-never-used",
        clock=clock,
        smtp=False,
        worker_threads=None,
    )
    try:
        assert "scheduler_stalled" in checks(judge(stack))  # never ran yet
        scheduler = Scheduler(stack.runtime, interval=15.0, tick=0.05)
        scheduler.start()
        wait_until(lambda: _heartbeat(stack), what="the scheduler's first heartbeat")
        scheduler.stop()  # stalled from now on
        beat_row = _heartbeat(stack)
        assert beat_row is not None and beat_row.interval_seconds == 15.0
        assert beat_row.finished_at == clock() and judge(stack).healthy
        clock.advance(timedelta(seconds=30))
        assert judge(stack).healthy  # two intervals: still in time
        clock.advance(timedelta(seconds=1))
        verdict = judge(stack)
        assert checks(verdict) == {"scheduler_stalled"} and verdict.exit_code == 2
        assert "last ran 31 s ago" in verdict.issues[0].message
    finally:
        stack.close()


def _heartbeat(stack: Stack) -> Heartbeat | None:
    with stack.db.read() as session:
        return session.get(Heartbeat, "scheduler")


def test_mailboxes_silent_past_their_limits(
    sqlite_url: str, tmp_path: Path, dovecot: Dovecot, sink: SmtpSink
) -> None:
    """The IMAP mailbox counts wall time since its last successful poll; the dealer's own
    address counts opening hours since its last delivered mail (a night is no silence)."""
    imap = dovecot.imap_toml().replace('after = "flag"', 'after = "flag"\nsilence_limit = "30m"')
    config = config_with(tmp_path, imap + '\n[dealers.monitoring]\nsilence_limit = "3h"\n')
    # Tuesday 2026-12-01 16:00 in Berlin: open until 18:00.
    clock = FakeClock(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    stack = Stack(sqlite_url, relay_url=sink.url, clock=clock, config=config)
    try:
        scheduler_ran(stack)
        with stack.db.read() as session:
            [account] = accounts_from(list(session.scalars(select(Dealer))))
        poller = ImapPoller(
            account, stack.db, enqueue=stack.runtime.enqueue_ingest, clock=clock, backoff_max=1.0
        )
        poller.start()
        try:
            wait_until(lambda: _imap_success(stack), what="a successful IMAP poll")
        finally:
            poller.stop()
        new_customer(stack, 1)  # delivered over SMTP at 16:00
        assert judge(stack).healthy

        clock.advance(timedelta(minutes=31))
        scheduler_ran(stack)
        verdict = judge(stack)
        assert checks(verdict) == {"imap_silent"} and verdict.exit_code == 2
        assert (
            f"IMAP mailbox {account.user} not fetched for 31 min, limit 30 min" in verdict.issues[0].message
        )

        # Wednesday 08:59: 3 h of opening hours (16:00-18:00, 08:00-08:59) minus a minute.
        clock.advance(timedelta(hours=16, minutes=28))
        scheduler_ran(stack)
        assert checks(judge(stack)) == {"imap_silent"}
        clock.advance(timedelta(minutes=2))
        scheduler_ran(stack)
        verdict = judge(stack)
        [silent] = [i for i in verdict.issues if i.check == "mail_silent"]
        assert silent.severity == "critical" and silent.dealer == "muster"
        assert silent.data["working_seconds"] == 3 * 3600 + 60
    finally:
        stack.close()


def _imap_success(stack: Stack) -> bool:
    with stack.db.read() as session:
        return any(row.last_success_at for row in session.scalars(select(ImapStatus)))


def test_a_dealer_with_fewer_leads_than_usual_raises_the_silence_alarm(
    sqlite_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    monitoring = (
        "\n[dealers.monitoring]\n"
        'min_leads = [{ count = 2, hours = "09:00-12:00", days = ["tue"] }]\n'
        'expectation = { weeks = 2, window = "3h", ratio = 0.5, min_expected = 2 }\n'
    )
    clock = FakeClock(datetime(2026, 11, 10, 6, 0, tzinfo=UTC))  # Tuesday 07:00 in Berlin
    stack = Stack(sqlite_url, relay_url=sink.url, clock=clock, config=config_with(tmp_path, monitoring))
    try:
        new_customer(stack, 0)  # the dealer's first mail: weeks before it are not judged
        clock.advance(timedelta(days=7, hours=2, minutes=30))  # Tuesday 2026-11-17 09:30
        n = 0
        for _week in range(2):  # three enquiries on each of two Tuesday mornings
            for _ in range(3):
                n += 1
                new_customer(stack, n)
                clock.advance(timedelta(minutes=10))
            clock.advance(timedelta(days=7, minutes=-30))
        # Tuesday 2026-12-01 10:30: nothing since 07:30, usually three by now.
        clock.advance(timedelta(hours=1))
        scheduler_ran(stack)
        verdict = judge(stack)
        assert checks(verdict) == {"leads_below_expectation"} and verdict.exit_code == 1
        assert verdict.issues[0].data == {"leads": 0, "expected": 3.0, "weeks": 2}

        for _ in range(2):  # two arrive before noon: enough for both rules
            n += 1
            new_customer(stack, n)
            clock.advance(timedelta(minutes=10))
        clock.advance(timedelta(hours=1, minutes=20))  # 12:10
        scheduler_ran(stack)
        assert judge(stack).healthy

        # A week later nothing came at all: the floor's window has closed with no lead.
        clock.advance(timedelta(days=7))
        scheduler_ran(stack)
        verdict = judge(stack)
        assert checks(verdict) == {"leads_below_floor", "leads_below_expectation"} and verdict.exit_code == 2
        [floor] = [i for i in verdict.issues if i.check == "leads_below_floor"]
        assert floor.data["leads"] == 0 and floor.data["floor"] == 2
    finally:
        stack.close()


def test_probe_leads_do_not_count_for_the_silence_alarm(
    sqlite_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    monitoring = (
        '\n[dealers.monitoring]\nmin_leads = [{ count = 1, hours = "09:00-12:00", days = ["tue"] }]\n'
    )
    clock = FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))  # Monday 10:00 in Berlin
    stack = Stack(sqlite_url, relay_url=sink.url, clock=clock, config=config_with(tmp_path, monitoring))
    try:
        new_customer(stack, 0)
        clock.advance(timedelta(days=1))
        new_customer(stack, 1)  # Tuesday 10:00, made a probe lead
        with stack.db.session() as session:
            lead = session.scalars(select(Lead).order_by(Lead.id.desc())).unique().first()
            assert lead is not None
            lead.format = "probe"
        clock.advance(timedelta(hours=3))
        verdict = judge(stack)
        [floor] = [i for i in verdict.issues if i.check == "leads_below_floor"]
        assert floor.data["leads"] == 0
    finally:
        stack.close()
