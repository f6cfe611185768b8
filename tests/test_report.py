"""The response-time report (``lms report``): its numbers equal a direct count of the same leads
from the leads, their timeline and the escalation events (not from the facts table), on SQLite
(tallied in Python) and on PostgreSQL (one SQL statement); probe leads never count; a
supervisor's report covers their team; JSON, CSV and the table from the command line."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from lms.cli import main
from models.policy import load_policy
from models.report_math import Period, iso_week, period_of
from models.report_views import ReportScope, dealer_report
from models.tables import Contact, EscalationEvent, InboundMessage, Lead, LeadActivity, User
from tests.support.speed import SpeedStack, berlin
from workers import lead_actions as actions
from workers import lead_events

PERIOD = ("2026-11-02", "2026-11-29")


def _form(name: str, text: str) -> str:
    """The dealer's web form: its robot sends the customer's details as fields."""
    return f"Name: Web {name}\nE-Mail: {name}@kunden.example\nNachricht: {text}\n"


def _scenario(speed: SpeedStack) -> None:
    """Four weeks of a dealer: quick and slow answers, never answered, completed in every way,
    escalated, leads of both teams and the pool, three sources, several types."""
    web = "Kontaktformular"
    plan: list[tuple[str, dict[str, Any], list[tuple[str, str, str]]]] = [
        ("2026-11-02T09:00", {"subject": "Probefahrt Golf"}, [("reply", "2026-11-02T09:20", "")]),
        ("2026-11-02T17:30", {"subject": "Probefahrt Polo"}, [("reply", "2026-11-03T08:45", "")]),
        ("2026-11-03T10:00", {"subject": "Finanzierung Passat", "body": "Finanzierung bitte"}, []),
        (
            "2026-11-04T11:00",
            {
                "subject": web,
                "sender": "Formular <form@web.example>",
                "body": _form("eins", "Leasing Tiguan"),
            },
            [("assign", "2026-11-04T11:05", "carl"), ("reply", "2026-11-04T15:00", "carl")],
        ),
        (
            "2026-11-06T12:30",
            {"subject": "Inzahlungnahme meines Audi"},
            [("complete", "2026-11-07T10:00", "sold")],
        ),
        ("2026-11-09T08:10", {"subject": "Probefahrt Golf"}, [("complete", "2026-11-09T09:00", "spam")]),
        (
            "2026-11-10T09:00",
            {
                "subject": web,
                "sender": "Formular <form@web.example>",
                "body": _form("zwei", "Probefahrt Golf"),
            },
            [
                ("assign", "2026-11-10T09:01", "ben"),
                ("escalate", "2026-11-10T11:05", ""),
                ("reply", "2026-11-10T16:00", ""),
            ],
        ),
        ("2026-11-14T10:00", {"subject": "Probefahrt Golf"}, [("pool", "2026-11-14T10:01", "")]),
        (
            "2026-11-17T13:00",
            {"subject": "Anfrage Golf"},
            [("reply", "2026-11-17T13:05", ""), ("complete", "2026-11-18T09:00", "bought_elsewhere")],
        ),
        (
            "2026-11-20T15:00",
            {"subject": "Leasing Angebot", "body": "Leasing Tiguan"},
            [("reply", "2026-11-23T08:30", "")],
        ),
        (
            "2026-11-23T10:00",
            {"subject": "Probefahrt Polo"},
            [("escalate", "2026-11-23T12:05", ""), ("escalate", "2026-11-23T16:05", "")],
        ),
        (
            "2026-11-27T16:00",
            {"subject": "Finanzierung Passat", "body": "Finanzierung bitte"},
            [("reply", "2026-11-27T16:01", "")],
        ),
        # Outside the period on both sides: never counted.
        ("2026-10-30T10:00", {"subject": "Probefahrt Golf"}, [("reply", "2026-10-30T10:30", "")]),
        ("2026-11-30T10:00", {"subject": "Probefahrt Golf"}, []),
    ]
    for arrives, mail, steps in plan:
        lead = speed.arrive(arrives, **mail)
        for step, when, arg in steps:
            if step == "reply":
                speed.reply(lead, when, as_user=arg or None)
            elif step == "assign":
                speed.assign(lead, when, arg)
            elif step == "pool":
                speed.act(
                    lead, when, lambda s, lead, now: actions.to_pool(s, lead, by="test", reason="", now=now)
                )
            elif step == "complete":
                speed.complete(lead, when, arg)
            else:
                speed.escalate(when)


def _probe_lead(speed: SpeedStack, when: str) -> int:
    """An end-to-end probe's lead (issue 14): a lead of format "probe", answered even."""
    now = speed.at(when)
    with speed.db.session() as session:
        policy = load_policy(session, "muster")
        contact = Contact(
            dealer_id="muster", email="probe@example.org", details={}, created_at=now, updated_at=now
        )
        session.add(contact)
        session.flush()
        lead = Lead(
            dealer_id="muster",
            contact_id=contact.id,
            type="general",
            format="probe",
            status="open",
            created_at=now,
            last_activity_at=now,
            vehicle={},
        )
        session.add(lead)
        session.flush()
        lead_events.created(session, policy, lead, now=now)
        lead_id = lead.id
    speed.reply(lead_id, berlin(when) + timedelta(minutes=5), as_user="anna")
    return lead_id


@pytest.fixture
def speed(db_url: str, tmp_path: Path) -> Iterator[SpeedStack]:
    stack = SpeedStack(db_url, outbox=tmp_path / "outbox")
    _scenario(stack)
    _probe_lead(stack, "2026-11-12T10:00")
    yield stack
    stack.close()


# -- the direct count -----------------------------------------------------------------------------
def _p(values: list[int], fraction: float) -> int | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    if fraction == 0.5:
        exact = statistics.median(values)
    else:
        exact = statistics.quantiles(values, n=10, method="inclusive")[8]
    return int(exact + 0.5)


def direct_count(session: Any, period: Period, team: set[str] | None = None) -> dict[str, Any]:
    """The report's figures from the leads, their activities and escalation events alone."""
    policy = load_policy(session, "muster")
    cal, reached = policy.calendar, set(policy.config.reports.answered_reasons)
    users = {u.id: u.username for u in session.scalars(select(User))}
    rows = []
    for lead in session.scalars(select(Lead).where(Lead.dealer_id == "muster")).unique():
        if lead.format == "probe":
            continue
        arrived = session.scalar(
            select(InboundMessage.received_at).where(InboundMessage.id == lead.inbound_id)
        )
        assert arrived is not None
        if not period.start <= arrived < period.end:
            continue
        reply = session.execute(
            select(LeadActivity.at, LeadActivity.user_id)
            .where(LeadActivity.lead_id == lead.id, LeadActivity.kind == "reply")
            .order_by(LeadActivity.at)
        ).first()
        answers = [(reply.at, users[reply.user_id])] if reply else []
        reason = lead.completion_reason.code if lead.completion_reason else None
        if lead.completed_at and reason in reached:
            answers.append((lead.completed_at, users.get(lead.editor_id)))
        answer = min(answers) if answers else None
        seller = answer[1] if answer else users.get(lead.editor_id)
        if team is not None and seller is not None and seller not in team:
            continue
        fired = session.execute(
            select(EscalationEvent.stage, EscalationEvent.fired_at).where(
                EscalationEvent.lead_id == lead.id, EscalationEvent.outcome == "sent"
            )
        ).all()
        before = {stage for stage, at in fired if answer is None or at < answer[0]}
        due = cal.add_working_time(arrived, policy.escalation.stage1)
        local = arrived.astimezone(cal.zone).date()
        rows.append(
            {
                "seller": seller,
                "source": lead.source.name if lead.source else None,
                "type": lead.type,
                "week": iso_week(local - timedelta(days=local.weekday())),
                "working": round(cal.working_time(arrived, answer[0]).total_seconds()) if answer else None,
                "within": bool(answer and answer[0] <= due),
                "stage1": "stage1" in before,
                "stage2": "stage2" in before,
                "reason": reason,
            }
        )

    def figures(group: list[dict[str, Any]]) -> dict[str, Any]:
        working = sorted(r["working"] for r in group if r["working"] is not None)
        reasons: dict[str, int] = {}
        for r in group:
            if r["reason"]:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        return {
            "leads": len(group),
            "answered": len(working),
            "answered_within_stage1": sum(r["within"] for r in group),
            "never_answered": len(group) - len(working),
            "median_first_answer_working_seconds": _p(working, 0.5),
            "p90_first_answer_working_seconds": _p(working, 0.9),
            "escalated_stage1": sum(r["stage1"] for r in group),
            "escalated_stage2": sum(r["stage2"] for r in group),
            "completion_reasons": dict(sorted(reasons.items())),
        }

    result: dict[str, Any] = {"totals": figures(rows)}
    for key in ("seller", "source", "type", "week"):
        keys = {r[key] for r in rows}
        result[key] = {k: figures([r for r in rows if r[key] == k]) for k in keys}
    return result


def _same(report_row: dict[str, Any], counted: dict[str, Any]) -> None:
    assert {k: report_row[k] for k in counted} == counted


def _period(speed: SpeedStack) -> Period:
    first, last = (datetime.fromisoformat(d).date() for d in PERIOD)
    return period_of(now=speed.clock(), timezone="Europe/Berlin", first=first, last=last)


def test_the_report_equals_a_direct_count_of_the_same_leads(speed: SpeedStack) -> None:
    period = _period(speed)
    with speed.db.read() as session:
        report = dealer_report(session, ReportScope("muster"), period, timezone="Europe/Berlin")
        counted = direct_count(session, period)
    assert report["totals"]["leads"] == 12  # the probe and the two leads outside the period left out
    _same(report["totals"], counted["totals"])
    assert report["totals"]["answered"] == 8 and report["totals"]["never_answered"] == 4
    assert {r["seller"]: r for r in report["by_seller"]}.keys() == counted["seller"].keys()
    for section, key in (
        ("by_seller", "seller"),
        ("by_source", "source"),
        ("by_type", "type"),
        ("by_week", "week"),
    ):
        rows = {r[key]: r for r in report[section]}
        assert rows.keys() == counted[key].keys(), section
        for name, row in rows.items():
            _same(row, counted[key][name])
    assert {r["source"] for r in report["by_source"]} == {"E-Mail", "Website"}
    assert [r["week"] for r in report["by_week"]] == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    distribution = {d["bucket"]: d["leads"] for d in report["distribution"]}
    assert sum(distribution.values()) == 12 and distribution["never"] == 4
    assert sum(d["leads"] for d in report["by_day"]) == 12


def test_a_supervisor_sees_their_team_and_the_pool(speed: SpeedStack) -> None:
    period = _period(speed)
    with speed.db.read() as session:
        ids = {u.username: u.id for u in session.scalars(select(User))}
        team = ReportScope("muster", frozenset({ids["lisa"], ids["carl"]}))
        report = dealer_report(session, team, period, timezone="Europe/Berlin")
        counted = direct_count(session, period, team={"lisa", "carl"})
    _same(report["totals"], counted["totals"])
    assert {r["seller"] for r in report["by_seller"]} == {"carl", None}  # carl's lead and the pool's


def test_lms_report_prints_json_csv_and_a_table(speed: SpeedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMS_DATABASE_URL", speed.stack.settings.database_url)
    runner = CliRunner()
    args = ["report", "--dealer", "muster", "--from", PERIOD[0], "--to", PERIOD[1]]
    result = runner.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    with speed.db.read() as session:
        assert data == json.loads(
            json.dumps(
                dealer_report(session, ReportScope("muster"), _period(speed), timezone="Europe/Berlin")
            )
        )
    assert set(data["totals"]) >= {
        "leads",
        "answered",
        "answered_within_stage1",
        "never_answered",
        "median_first_answer_working_seconds",
        "p90_first_answer_working_seconds",
    }
    assert {"by_seller", "by_source", "by_type", "by_week"} <= set(data)

    result = runner.invoke(main, [*args, "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    groups = 1 + sum(len(data[s]) for s in ("by_seller", "by_source", "by_type", "by_week"))
    assert len(rows) == groups and rows[0]["group"] == "totals" and rows[0]["leads"] == "12"

    result = runner.invoke(main, args)
    assert result.exit_code == 0 and "totals" in result.output and "Website" in result.output

    result = runner.invoke(main, ["report", "--dealer", "muster", "--json"])  # the last 30 days
    assert result.exit_code == 0 and "totals" in json.loads(result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dealer", "nobody"], "no dealer 'nobody'"),
        (["--dealer", "muster", "--from", "2026-13-01"], "is no date"),
        (
            ["--dealer", "muster", "--from", "2026-11-10", "--to", "2026-11-01"],
            "ends (2026-11-01) before it starts",
        ),
        (["--dealer", "muster", "--json", "--csv"], "choose one of --json and --csv"),
    ],
)
def test_lms_report_refuses_mistakes_in_one_sentence(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    stack = SpeedStack(sqlite_url, outbox=tmp_path / "outbox")
    stack.close()
    monkeypatch.setenv("LMS_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
