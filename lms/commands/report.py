"""``lms report``: how fast a dealer answers its leads (speed to lead), as a table, JSON or CSV."""

from __future__ import annotations

import csv
import sys
from datetime import date
from typing import Any

import click

from lms.common import emit_json, fail, open_db
from models.clock import system_clock
from models.policy import UnknownDealer, load_policy
from models.report_math import human_duration, period_of
from models.report_views import ReportScope, dealer_report

CSV_FIELDS = (
    "leads",
    "answered",
    "answered_share",
    "answered_within_stage1",
    "within_stage1_share",
    "never_answered",
    "median_first_answer_working_seconds",
    "p90_first_answer_working_seconds",
    "median_first_answer_wall_seconds",
    "p90_first_answer_wall_seconds",
    "escalated_stage1",
    "escalated_stage2",
    "completed",
)
SECTIONS = (("by_seller", "seller"), ("by_source", "source"), ("by_type", "type"), ("by_week", "week"))


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is no date; write e.g. 2026-11-01") from None


def _rows(report: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    rows = [("totals", "", report["totals"])]
    for section, key in SECTIONS:
        rows += [(key, str(row[key] if row[key] is not None else "-"), row) for row in report[section]]
    return rows


def _csv(report: dict[str, Any]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["group", "key", *CSV_FIELDS, "completion_reasons"])
    for group, key, row in _rows(report):
        reasons = " ".join(f"{code}={n}" for code, n in row["completion_reasons"].items())
        writer.writerow([group, key, *("" if row[f] is None else row[f] for f in CSV_FIELDS), reasons])


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _table(report: dict[str, Any]) -> None:
    click.echo(
        f"Dealer {report['dealer']}: leads from {report['from']} to {report['to']} ({report['timezone']})"
    )
    click.echo("First answer in working time (a seller's reply, or completing as reached).")
    click.echo(
        f"{'GROUP':<8} {'KEY':<22} {'LEADS':>6} {'ANSWERED':>9} {'IN STAGE1':>9} {'NEVER':>6} "
        f"{'MEDIAN':>12} {'P90':>12}"
    )
    for group, key, row in _rows(report):
        click.echo(
            f"{group:<8} {key[:22]:<22} {row['leads']:>6} {_percent(row['answered_share']):>9} "
            f"{_percent(row['within_stage1_share']):>9} {row['never_answered']:>6} "
            f"{human_duration(row['median_first_answer_working_seconds']):>12} "
            f"{human_duration(row['p90_first_answer_working_seconds']):>12}"
        )
    reasons = report["totals"]["completion_reasons"]
    if reasons:
        click.echo("Completed: " + ", ".join(f"{code} {n}" for code, n in reasons.items()))


@click.command()
@click.option("--dealer", required=True, help="The dealer's id.")
@click.option("--from", "first", callback=_date, help="First day (the dealer's date, YYYY-MM-DD).")
@click.option("--to", "last", callback=_date, help="Last day, included (default: 30 days).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV: one row per group.")
def report(dealer: str, first: date | None, last: date | None, as_json: bool, as_csv: bool) -> None:
    """Speed to lead: leads, answered share, median and 90th percentile time to the first answer
    (working time), answered within stage 1, never answered, completion reasons: in total, per
    seller, source, lead type and week. Default period: the last 30 days up to now."""
    if as_json and as_csv:
        fail("choose one of --json and --csv")
    db = open_db()
    try:
        with db.read() as session:
            try:
                policy = load_policy(session, dealer)
            except UnknownDealer:
                fail(f"no dealer {dealer!r}")
            try:
                period = period_of(now=system_clock(), timezone=policy.timezone, first=first, last=last)
            except ValueError as exc:
                fail(str(exc))
            data = dealer_report(session, ReportScope(dealer), period, timezone=policy.timezone)
    finally:
        db.dispose()
    if as_json:
        emit_json(data)
    elif as_csv:
        _csv(data)
    else:
        _table(data)
