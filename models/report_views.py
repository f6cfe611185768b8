"""The response-time report (``lms report``, the web pane's reports page, the weekly summary).

Read from ``lead_facts`` alone: one row per lead, with the seller, source, type, local day and
week already on it. On PostgreSQL one statement computes every group at once (``GROUPING
SETS``, ``percentile_cont``); on SQLite (the embedded default, small installations) the rows of
the period are tallied in Python with the same arithmetic (``models.report_math``). Both give
the same figures: the tests run on both.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from models.business_calendar import BusinessCalendar
from models.report_math import (
    BUCKET_NAMES,
    BUCKETS,
    COUNTS,
    Period,
    Tally,
    bucket_of,
    figures,
    iso_week,
    tally_rows,
)
from models.report_tables import LeadFact
from models.tables import CompletionReason, Contact, Lead, Source, User

GROUPS = ("seller", "source", "type", "week")
COLUMN = {"seller": "seller_id", "source": "source_id", "type": "type", "week": "arrived_week"}
# GROUPING(seller_id, source_id, type, arrived_week): a bit per column left out of the group.
GROUPING_BITS = {"totals": 0b1111, "seller": 0b0111, "source": 0b1011, "type": 0b1101, "week": 0b1110}
ROW_COLUMNS = (
    "seller_id",
    "source_id",
    "type",
    "arrived_week",
    "arrived_day",
    "first_answer_at",
    "first_answer_working_seconds",
    "first_answer_wall_seconds",
    "answered_within_stage1",
    "escalated_stage1",
    "escalated_stage2",
    "completed_at",
    "completion_reason",
)


@dataclass(frozen=True)
class ReportScope:
    """Whose leads: the whole dealer (``editors`` None), or a team's (``editors``: its people's
    ids) together with the dealer's pool, as a supervisor sees them in the leads list."""

    dealer_id: str
    editors: frozenset[int] | None = None


def _where(scope: ReportScope, period: Period) -> list[Any]:
    clauses: list[Any] = [
        LeadFact.dealer_id == scope.dealer_id,
        LeadFact.arrived_at >= period.start,
        LeadFact.arrived_at < period.end,
    ]
    if scope.editors is not None:
        clauses.append(or_(LeadFact.seller_id.is_(None), LeadFact.seller_id.in_(sorted(scope.editors))))
    return clauses


def _reason_codes(session: Session, dealer_id: str) -> list[str]:
    return sorted(
        set(
            session.scalars(
                select(CompletionReason.code).where(
                    or_(CompletionReason.dealer_id.is_(None), CompletionReason.dealer_id == dealer_id)
                )
            )
        )
    )


# -- PostgreSQL: a few statements, each the cheapest form of its figures -----------------------
# One statement with every figure of every group took seconds over a large period: the
# GroupAggregate sorted all rows once per grouping set and evaluated two dozen aggregates per row
# and set. Split, the counts are hashed (no sort at all), only answered rows are sorted for the
# percentiles (working time per group; wall time for the totals only), and the distribution is
# counted once. See bench/report.py.
_SETS = "GROUPING SETS ((), (seller_id), (source_id), (type), (arrived_week))"
_KEYS = (
    "GROUPING(seller_id, source_id, type, arrived_week) AS grouping_bits, "
    "seller_id, source_id, type, arrived_week"
)


def _from(scope: ReportScope) -> str:
    team = " AND (seller_id IS NULL OR seller_id = ANY(:editors))" if scope.editors is not None else ""
    return f"FROM lead_facts WHERE dealer_id = :dealer AND arrived_at >= :start AND arrived_at < :end{team}"


def _grouped(groups: bool) -> tuple[str, str]:
    """(the key columns, the GROUP BY clause): every group, or the totals alone."""
    if groups:
        return _KEYS, f"GROUP BY {_SETS}"
    return f"{GROUPING_BITS['totals']} AS grouping_bits", ""


def _pg_counts_sql(scope: ReportScope, reasons: Sequence[str], *, groups: bool) -> str:
    keys, group_by = _grouped(groups)
    reason_counts = "".join(
        f", count(*) FILTER (WHERE completion_reason = :reason_{i}) AS reason_{i}"
        for i in range(len(reasons))
    )
    return f"""SELECT {keys}, count(*) AS leads, count(first_answer_at) AS answered,
  count(*) FILTER (WHERE answered_within_stage1) AS answered_within_stage1,
  count(*) FILTER (WHERE escalated_stage1) AS escalated_stage1,
  count(*) FILTER (WHERE escalated_stage2) AS escalated_stage2,
  count(completed_at) AS completed{reason_counts}
{_from(scope)} {group_by}"""


def _pg_percentiles_sql(scope: ReportScope, *, groups: bool) -> str:
    keys, group_by = _grouped(groups)
    return f"""SELECT {keys},
  percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY first_answer_working_seconds) AS working
{_from(scope)} AND first_answer_working_seconds IS NOT NULL {group_by}"""


def _pg_totals_sql(scope: ReportScope) -> str:
    lows = [-1, *(upper for _, upper in BUCKETS)]  # the first bucket takes 0 s too
    buckets = "".join(
        f", count(*) FILTER (WHERE first_answer_working_seconds > {low} "
        f"AND first_answer_working_seconds <= {high}) AS bucket_{name}"
        for (name, high), low in zip(BUCKETS, lows, strict=False)
    )
    return f"""SELECT
  percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY first_answer_wall_seconds) AS wall{buckets},
  count(*) FILTER (WHERE first_answer_working_seconds > {lows[-1]}) AS bucket_more
{_from(scope)} AND first_answer_working_seconds IS NOT NULL"""


def _pg_groups(
    session: Session, scope: ReportScope, period: Period, reasons: Sequence[str], *, groups: bool
) -> tuple[dict[str, dict[Any, dict[str, Any]]], dict[str, int]]:
    params: dict[str, Any] = {"dealer": scope.dealer_id, "start": period.start, "end": period.end}
    params.update({f"reason_{i}": code for i, code in enumerate(reasons)})
    if scope.editors is not None:
        params["editors"] = sorted(scope.editors)
    # Sorting for the percentiles in memory, not on disk; and no JIT: compiling these expressions
    # took longer (0.4 s) than it saved. Settings of this transaction only.
    session.execute(text("SET LOCAL work_mem = '128MB'"))
    session.execute(text("SET LOCAL jit = off"))
    by_bits = {bits: name for name, bits in GROUPING_BITS.items()}

    def keyed(sql: str) -> dict[tuple[str, Any], Any]:
        found = {}
        for row in session.execute(text(sql), params).mappings():
            name = by_bits[row["grouping_bits"]]
            found[(name, None if name == "totals" else row[COLUMN[name]])] = row
        return found

    counts = keyed(_pg_counts_sql(scope, reasons, groups=groups))
    percentiles = keyed(_pg_percentiles_sql(scope, groups=groups))
    extra = session.execute(text(_pg_totals_sql(scope)), params).mappings().one()
    result: dict[str, dict[Any, dict[str, Any]]] = {name: {} for name in GROUPING_BITS}
    for (name, key), row in counts.items():
        found = percentiles.get((name, key))
        working = (found["working"] if found is not None else None) or [None, None]
        wall = (extra["wall"] or [None, None]) if name == "totals" else [None, None]
        result[name][key] = figures(
            {c: row[c] for c in COUNTS},
            median_working=working[0],
            p90_working=working[1],
            median_wall=wall[0],
            p90_wall=wall[1],
            reasons={code: row[f"reason_{i}"] for i, code in enumerate(reasons)},
        )
    distribution = {n: int(extra[f"bucket_{n}"]) for n in BUCKET_NAMES if n != "never"}
    totals = result["totals"].get(None)
    distribution["never"] = totals["never_answered"] if totals else 0
    return result, distribution


def _pg_days(session: Session, scope: ReportScope, period: Period) -> list[tuple[date, int | None, int]]:
    query = (
        select(LeadFact.arrived_day, LeadFact.source_id, func.count())
        .where(*_where(scope, period))
        .group_by(LeadFact.arrived_day, LeadFact.source_id)
    )
    return [(day, source, int(n)) for day, source, n in session.execute(query)]


# -- SQLite: the period's rows, tallied ---------------------------------------------------------
def _python_groups(
    session: Session, scope: ReportScope, period: Period, *, groups: bool
) -> tuple[dict[str, dict[Any, dict[str, Any]]], dict[str, int], list[tuple[date, int | None, int]]]:
    columns = [getattr(LeadFact, c) for c in ROW_COLUMNS]
    query = select(*columns).where(*_where(scope, period))
    rows = [dict(zip(ROW_COLUMNS, r, strict=True)) for r in session.execute(query)]
    total = Tally()
    distribution = dict.fromkeys(BUCKET_NAMES, 0)
    days: dict[tuple[date, int | None], int] = {}
    for row in rows:
        total.add(row)
        distribution[bucket_of(row["first_answer_working_seconds"] if row["first_answer_at"] else None)] += 1
        day_key = (row["arrived_day"], row["source_id"])
        days[day_key] = days.get(day_key, 0) + 1
    result: dict[str, dict[Any, dict[str, Any]]] = {"totals": {None: total.figures(wall=True)}}
    for name in GROUPS:
        tallies = tally_rows(rows, COLUMN[name]) if groups else {}
        result[name] = {key: tally.figures() for key, tally in tallies.items()}
    return result, distribution, [(d, s, n) for (d, s), n in days.items()]


# -- the report -----------------------------------------------------------------------------------
def _names(session: Session, scope: ReportScope) -> tuple[dict[int, User], dict[int, str]]:
    users = {u.id: u for u in session.scalars(select(User).where(User.dealer_id == scope.dealer_id))}
    sources = {
        s.id: s.name
        for s in session.scalars(
            select(Source).where(or_(Source.dealer_id.is_(None), Source.dealer_id == scope.dealer_id))
        )
    }
    return users, sources


def _sorted(rows: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-r["leads"], str(r[label] or "~")))


def dealer_report(
    session: Session, scope: ReportScope, period: Period, *, timezone: str, groups: bool = True
) -> dict[str, Any]:
    """The report of INTERFACE.md ``lms report``: totals, by seller, source, type and week, the
    distribution of first-answer times, and leads per day and source. Probe leads have no facts
    and so never count. ``groups=False``: the totals only (the comparison period)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        reasons = _reason_codes(session, scope.dealer_id)
        grouped, distribution = _pg_groups(session, scope, period, reasons, groups=groups)
        days = _pg_days(session, scope, period) if groups else []
    else:
        grouped, distribution, days = _python_groups(session, scope, period, groups=groups)
    totals = grouped["totals"].get(None) or Tally().figures()
    if not distribution:
        distribution = dict.fromkeys(BUCKET_NAMES, 0)
    report: dict[str, Any] = {
        "dealer": scope.dealer_id,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "timezone": timezone,
        "totals": totals,
        "distribution": [
            {"bucket": name, "upper_working_seconds": dict(BUCKETS).get(name), "leads": distribution[name]}
            for name in BUCKET_NAMES
        ],
    }
    if not groups:
        return report
    users, sources = _names(session, scope)
    report["by_seller"] = sorted(
        (
            {
                "seller": users[key].username if key in users else None,
                "name": users[key].name if key in users else None,
                **data,
            }
            for key, data in grouped["seller"].items()
        ),
        key=lambda r: (r["seller"] is None, str(r["name"] or "")),
    )
    report["by_source"] = _sorted(
        [{"source": sources.get(key) if key else None, **data} for key, data in grouped["source"].items()],
        "source",
    )
    report["by_type"] = _sorted([{"type": key, **data} for key, data in grouped["type"].items()], "type")
    report["by_week"] = sorted(
        (
            {"week": iso_week(key), "week_start": key.isoformat(), **data}
            for key, data in grouped["week"].items()
        ),
        key=lambda r: r["week_start"],
    )
    report["by_day"] = sorted(
        ({"day": day.isoformat(), "source": sources.get(s) if s else None, "leads": n} for day, s, n in days),
        key=lambda r: (r["day"], str(r["source"] or "~")),
    )
    return report


def slowest_open(
    session: Session,
    scope: ReportScope,
    *,
    now: datetime,
    calendar: BusinessCalendar,
    limit: int = 5,
    exclude_formats: Collection[str] = ("probe",),
) -> list[dict[str, Any]]:
    """The open leads in scope waiting longest for a first answer, with the working time waited."""
    query = (
        select(
            LeadFact.lead_id, LeadFact.arrived_at, Lead.subject, Contact.name, Contact.email, User.username
        )
        .join(Lead, Lead.id == LeadFact.lead_id)
        .join(Contact, Contact.id == Lead.contact_id)
        .outerjoin(User, User.id == Lead.editor_id)
        .where(
            LeadFact.dealer_id == scope.dealer_id,
            LeadFact.first_answer_at.is_(None),
            Lead.status == "open",
            Lead.format.not_in(list(exclude_formats)),
        )
        .order_by(LeadFact.arrived_at, LeadFact.lead_id)
        .limit(limit)
    )
    if scope.editors is not None:
        query = query.where(or_(Lead.editor_id.is_(None), Lead.editor_id.in_(sorted(scope.editors))))
    return [
        {
            "id": lead_id,
            "arrived_at": arrived.isoformat(),
            "subject": subject or "",
            "customer": name or email or "",
            "editor": editor,
            "waiting_working_seconds": round(calendar.working_time(arrived, now).total_seconds()),
        }
        for lead_id, arrived, subject, name, email, editor in session.execute(query)
    ]
