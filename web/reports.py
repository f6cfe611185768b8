"""The reports page: speed to lead for a period (picker and presets), compared with the period
before, with charts drawn on the server and the tables of ``lms report``; printable. Supervisors
see their team (and the pool), admins the dealer (:func:`web.scope.report_scope`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from models.policy import load_policy
from models.report_math import BUCKETS, Period, human_duration, percent, period_of
from models.report_views import ReportScope, dealer_report
from web import report_charts as charts
from web.context import ctx_of
from web.i18n import Translator
from web.leads import reason_label
from web.render import is_htmx, render
from web.scope import report_scope, scope_of
from workers.lead_actions import usable_reasons

BUCKET_LABELS = {name: f"≤ {name.replace('m', ' min').replace('h', ' h')}" for name, _ in BUCKETS}
MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class ReportParams:
    first: date | None
    last: date | None
    problem: bool = False  # the dates given could not be used

    @classmethod
    def parse(cls, request: Request) -> ReportParams:
        raw = [request.query_params.get(name, "").strip() for name in ("from", "to")]
        try:
            first, last = (date.fromisoformat(value) if value else None for value in raw)
        except ValueError:
            return cls(None, None, problem=True)
        if first and last and (last < first or (last - first).days > MAX_DAYS):
            return cls(None, None, problem=True)
        return cls(first, last)


def presets(today: date) -> list[tuple[str, date, date]]:
    month_start = today.replace(day=1)
    previous_end = month_start - timedelta(days=1)
    return [
        ("last_7_days", today - timedelta(days=6), today),
        ("last_30_days", today - timedelta(days=29), today),
        ("last_90_days", today - timedelta(days=89), today),
        ("this_month", month_start, today),
        ("last_month", previous_end.replace(day=1), previous_end),
    ]


def _reason_labels(session: Session, dealer_id: str, t: Translator) -> dict[str, str]:
    reasons = usable_reasons(session, dealer_id, include_hidden=True)
    return {code: reason_label(t, row) for code, row in reasons.items()}


def _local_days(period: Period, zone: Any) -> tuple[date, date]:
    first = period.start.astimezone(zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(zone).date()
    return first, last


def _charts(report: dict[str, Any], t: Translator, period: Period) -> dict[str, Any]:
    buckets = [
        (
            t("bucket_never")
            if d["bucket"] == "never"
            else t("bucket_more")
            if d["bucket"] == "more"
            else BUCKET_LABELS[d["bucket"]],
            d["leads"],
        )
        for d in report["distribution"]
    ]
    no_source = t("no_source")
    counts: dict[tuple[str, str], int] = {}
    totals: dict[str, int] = {}
    for row in report["by_day"]:
        source = row["source"] or no_source
        counts[(row["day"], source)] = counts.get((row["day"], source), 0) + row["leads"]
        totals[source] = totals.get(source, 0) + row["leads"]
    sources = sorted(totals, key=lambda s: (-totals[s], s))
    first, last = _local_days(period, t.zone)
    seller_rows = [
        (row["name"] or t("pool"), row["answered_share"], row["leads"]) for row in report["by_seller"]
    ]
    return {
        "distribution": charts.histogram(buckets, title=t("chart_distribution")),
        "per_day": charts.days_by_source(
            charts.day_range(first, last),
            counts,
            sources,
            title=t("chart_per_day"),
            day_label=lambda d: t.date(d)[:6],
        ),
        "shares": charts.shares(seller_rows, title=t("chart_shares"), percent=lambda v: percent(v, t.lang)),
    }


def report_context(
    session: Session, scope: ReportScope, params: ReportParams, t: Translator, now: datetime, *, team: bool
) -> dict[str, Any]:
    policy = load_policy(session, scope.dealer_id)
    period = period_of(now=now, timezone=policy.timezone, first=params.first, last=params.last)
    report = dealer_report(session, scope, period, timezone=policy.timezone)
    before = dealer_report(session, scope, period.previous(), timezone=policy.timezone, groups=False)
    first, last = _local_days(period, t.zone)
    previous_first, previous_last = _local_days(period.previous(), t.zone)
    today = now.astimezone(t.zone).date()
    return {
        "report": report,
        "previous": before["totals"],
        "charts": _charts(report, t, period),
        "first": first,
        "last": last,
        "previous_first": previous_first,
        "previous_last": previous_last,
        "presets": presets(today),
        "problem": params.problem,
        "reasons": _reason_labels(session, scope.dealer_id, t),
        "team": team,
        "duration": human_duration,
        "pct": lambda value: percent(value, t.lang),
    }


async def reports_page(request: Request) -> Response:
    ctx = ctx_of(request)
    lead_scope = scope_of(request)
    scope = report_scope(lead_scope)
    params = ReportParams.parse(request)
    t = request.state.auth.t

    def load() -> dict[str, Any]:
        with ctx.db.read() as session:
            return report_context(session, scope, params, t, ctx.clock(), team=not lead_scope.is_admin)

    data = await run_in_threadpool(load)
    if is_htmx(request) and request.headers.get("HX-Target") == "report":
        return render(request, "_report.html", **data)
    return render(request, "reports.html", **data)


async def api_report(request: Request) -> Response:
    """``/api/report?from=&to=``: the JSON of ``lms report``, in the person's scope."""
    ctx = ctx_of(request)
    scope = report_scope(scope_of(request))
    params = ReportParams.parse(request)
    if params.problem:
        return JSONResponse(
            {"error": "from and to must be dates (YYYY-MM-DD), from before to"}, status_code=400
        )

    def load() -> dict[str, Any]:
        with ctx.db.read() as session:
            policy = load_policy(session, scope.dealer_id)
            period = period_of(
                now=ctx.clock(), timezone=policy.timezone, first=params.first, last=params.last
            )
            return dealer_report(session, scope, period, timezone=policy.timezone)

    return JSONResponse(await run_in_threadpool(load))
