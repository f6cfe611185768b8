"""The dealer's response-time report (``lms report --json``, the reports page) on a database of
1,000,000 leads on PostgreSQL, against the same figures computed by one bare SQL query in the
same run.

    .venv/bin/python bench/report.py [--leads 1000000] [--days 730] [--periods 30,365]
        [--runs 20] [--long-runs 5] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

A throw-away database on that server gets the reports dealer (tests/fixtures/dealer_reports.toml:
six people in two teams) and ``--leads`` leads with their facts spread evenly over the last
``--days`` days (80 % answered, first answers from a minute to days, some escalated, most
completed with a reason; five sources, the ten lead types), then VACUUM ANALYZE.

For each period (the last N days up to now; the first period is the report's default, 30 days),
after one warm-up, timed ``--runs`` (first period) or ``--long-runs`` times:
- ``report``: :func:`models.report_views.dealer_report` as ``lms report`` and the page call it
  (a fresh read session each time; totals, by seller, source, type and week, the distribution,
  leads per day and source, names);
- ``bare SQL``: one hand-written statement computing the same figures (GROUPING SETS with
  percentile_cont over lead_facts), its rows fetched and nothing else;
- ``scan floor``: count(*) of the period's rows, what reading them once costs.
The figures of the report and the bare statement are compared. Prints p50 and p95 in ms.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from models.config_apply import apply_config  # noqa: E402
from models.db import Database  # noqa: E402
from models.dealer_config import load_config_file  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.report_math import Period  # noqa: E402
from models.report_views import ReportScope, dealer_report  # noqa: E402

SOURCES = ["mobile.de", "AutoScout24", "Website", "E-Mail", "ADF"]
TYPES = [
    "new_car",
    "used_car",
    "test_drive",
    "trade_in",
    "financing",
    "leasing",
    "service",
    "parts",
    "callback",
    "general",
]
REASONS = ["sold", "bought_elsewhere", "no_interest", "unreachable", "duplicate", "spam"]

# Leads and their facts made by the database itself (generate_series): a million rows in seconds.
FILL_LEADS = """
INSERT INTO leads (dealer_id, contact_id, ordinal, type, source_id, editor_id, "group", status,
                   vehicle, trade_ins, links, format, created_at, last_activity_at, due_kind, due_version)
SELECT 'muster', :contact, 0, (CAST(:types AS text[]))[1 + (n % 10)],
       (CAST(:sources AS bigint[]))[1 + ((n * 7) % 5)],
       CASE WHEN n % 9 = 0 THEN NULL
            ELSE (CAST(:users AS bigint[]))[1 + (n % cardinality(CAST(:users AS bigint[])))] END,
       'default', CASE WHEN n % 5 = 0 THEN 'open' ELSE 'completed' END, '{}', '[]', '[]', 'mail',
       CAST(:end AS timestamptz) - (n::bigint * :span / :total) * interval '1 second',
       CAST(:end AS timestamptz), 'stage1', 1
FROM generate_series(1, :total) AS n
"""
FILL_FACTS = """
INSERT INTO lead_facts (lead_id, dealer_id, arrived_at, arrived_day, arrived_week, seller_id, source_id, type,
                        stage1_due_at, first_answer_at, first_answer_kind, first_answer_by,
                        first_answer_working_seconds, first_answer_wall_seconds, answered_within_stage1,
                        escalated_stage1, escalated_stage2, completed_at, completion_reason,
                        completion_working_seconds, completion_wall_seconds, updated_at)
SELECT id, dealer_id, created_at, (created_at AT TIME ZONE 'Europe/Berlin')::date,
       date_trunc('week', created_at AT TIME ZONE 'Europe/Berlin')::date, editor_id, source_id, type,
       created_at + interval '2 hours',
       CASE WHEN answered THEN created_at + wall * interval '1 second' END,
       CASE WHEN answered THEN 'reply' END, CASE WHEN answered THEN editor_id END,
       CASE WHEN answered THEN working END, CASE WHEN answered THEN wall END,
       answered AND working <= 7200, NOT answered OR working > 7200, NOT answered AND id % 3 = 0,
       CASE WHEN status = 'completed' THEN created_at + interval '3 days' END,
       CASE WHEN status = 'completed' THEN (CAST(:reasons AS text[]))[1 + (id % 6)] END,
       CASE WHEN status = 'completed' THEN 30 * 3600 END, CASE WHEN status = 'completed' THEN 259200 END,
       now()
FROM (
  SELECT l.*, (hashint4(id::int) % 10) < 8 AS answered,
         (60 + abs(hashint4(id::int + 7)) % 36000 * (1 + id % 4)) AS working,
         (60 + abs(hashint4(id::int + 7)) % 36000 * (1 + id % 4)) * 2 AS wall
  FROM leads l
) AS l
"""
# The least any report of the period costs: reading its rows once.
SCAN = "SELECT count(*) FROM lead_facts WHERE dealer_id = 'muster' AND arrived_at BETWEEN :start AND :end"

# The same figures in one bare statement, written without our code: every group, every figure.
_BOUNDS = [-1, 900, 1800, 3600, 7200, 14400, 28800, 86400]
_BUCKETS = (
    ",\n       ".join(
        f"count(*) FILTER (WHERE first_answer_working_seconds > {low} "
        f"AND first_answer_working_seconds <= {high})"
        for low, high in itertools.pairwise(_BOUNDS)
    )
    + f",\n       count(*) FILTER (WHERE first_answer_working_seconds > {_BOUNDS[-1]})"
)
BARE = """
SELECT GROUPING(seller_id, source_id, type, arrived_week, arrived_day) AS g,
       seller_id, source_id, type, arrived_week, arrived_day,
       count(*) AS leads, count(first_answer_at) AS answered,
       count(*) FILTER (WHERE answered_within_stage1) AS within,
       count(*) FILTER (WHERE escalated_stage1) AS stage1, count(*) FILTER (WHERE escalated_stage2) AS stage2,
       count(completed_at) AS completed,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY first_answer_working_seconds) AS working,
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY first_answer_wall_seconds) AS wall,
       count(*) FILTER (WHERE completion_reason = 'sold') AS sold,
       count(*) FILTER (WHERE completion_reason = 'bought_elsewhere') AS bought_elsewhere,
       count(*) FILTER (WHERE completion_reason = 'no_interest') AS no_interest,
       count(*) FILTER (WHERE completion_reason = 'unreachable') AS unreachable,
       count(*) FILTER (WHERE completion_reason = 'duplicate') AS duplicate,
       count(*) FILTER (WHERE completion_reason = 'spam') AS spam,
       {buckets}
FROM lead_facts
WHERE dealer_id = 'muster' AND arrived_at >= :start AND arrived_at < :end
GROUP BY GROUPING SETS ((), (seller_id), (source_id), (type), (arrived_week), (arrived_day, source_id))
""".replace("{buckets}", _BUCKETS)


def timed(run: Callable[[], object], n: int) -> list[float]:
    run()  # warm
    out = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def fill(db: Database, total: int, days: int, end: datetime) -> None:
    with db.session() as session:
        session.execute(
            text(
                "INSERT INTO contacts (dealer_id, name, email, details, created_at, updated_at) "
                "VALUES ('muster', 'Bench', 'bench@example.org', '{}', now(), now())"
            )
        )
        contact = session.scalar(text("SELECT id FROM contacts WHERE email = 'bench@example.org'"))
        for name in SOURCES:
            insert = "INSERT INTO sources (dealer_id, name, rules) VALUES ('muster', :n, '{}')"
            session.execute(text(insert + " ON CONFLICT DO NOTHING"), {"n": name})
        sources = list(
            session.scalars(text("SELECT id FROM sources WHERE dealer_id = 'muster' ORDER BY id"))
        )[:5]
        users = list(session.scalars(text("SELECT id FROM users WHERE dealer_id = 'muster' ORDER BY id")))
        session.execute(
            text(FILL_LEADS),
            {
                "contact": contact,
                "types": TYPES,
                "sources": sources,
                "users": users,
                "end": end,
                "span": days * 86400,
                "total": total,
            },
        )
        session.execute(text(FILL_FACTS), {"reasons": REASONS})
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def measure(db: Database, scope: ReportScope, period: Period, days: int, runs: int) -> None:
    def ours() -> dict[str, object]:
        with db.read() as session:
            return dealer_report(session, scope, period, timezone="Europe/Berlin")

    def bare() -> list[object]:
        with db.engine.connect() as conn:
            conn.execute(text("SET work_mem = '128MB'"))
            conn.execute(text("SET jit = off"))
            return list(conn.execute(text(BARE), {"start": period.start, "end": period.end}).all())

    def scan() -> object:
        with db.engine.connect() as conn:
            return conn.execute(text(SCAN), {"start": period.start, "end": period.end}).scalar()

    report = ours()
    rows = bare()
    totals = next(r for r in rows if r.g == 0b11111)
    mine = report["totals"]
    assert isinstance(mine, dict)
    assert (mine["leads"], mine["answered"], mine["answered_within_stage1"], mine["escalated_stage2"]) == (
        totals.leads,
        totals.answered,
        totals.within,
        totals.stage2,
    ), "the report and the bare query disagree"
    assert mine["median_first_answer_working_seconds"] == int(totals.working[0] + 0.5)
    assert mine["p90_first_answer_working_seconds"] == int(totals.working[1] + 0.5)
    seller = {r.seller_id: r for r in rows if r.g == 0b01111}
    assert len(seller) == len(report["by_seller"])  # type: ignore[arg-type]
    groups = {k: len(v) for k, v in report.items() if isinstance(v, list)}  # type: ignore[arg-type]
    print(f"\nlast {days} days: {mine['leads']:,} leads in the period; groups {groups}")
    print(f"{'':<12} {'p50 ms':>9} {'p95 ms':>9}   ({runs} runs each, after one warm-up)")
    timings = {"report": timed(ours, runs), "bare SQL": timed(bare, runs), "scan floor": timed(scan, runs)}
    for label, values in timings.items():
        print(f"{label:<12} {statistics.median(values):>9.0f} {p95(values):>9.0f}")
    ratio = statistics.median(timings["report"]) / statistics.median(timings["bare SQL"])
    verdict = "<" if p95(timings["report"]) < 1000 else ">="
    print(f"report / bare SQL (p50): {ratio:.2f}; report p95 {verdict} 1000 ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--days", type=int, default=730, help="The leads arrived over this many days.")
    parser.add_argument(
        "--periods",
        default="30,365",
        help="Report periods (days up to now); the first is timed --runs times.",
    )
    parser.add_argument("--long-runs", type=int, default=5, help="Runs for the other periods.")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    base = args.postgres.rsplit("/", 1)[0]
    name = f"lms_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = args.postgres.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"{base}/{name}", statement_timeout_ms=0)  # filling a million rows takes a while
    try:
        upgrade(db)
        now = datetime.now(UTC)
        with db.session() as session:
            apply_config(session, load_config_file(ROOT / "tests/fixtures/dealer_reports.toml"), now=now)
        started = time.perf_counter()
        fill(db, args.leads, args.days, now)
        print(f"{args.leads:,} leads and their facts inserted in {time.perf_counter() - started:.0f} s")
        scope = ReportScope("muster")
        for days, runs in [
            (int(d), args.runs if i == 0 else args.long_runs) for i, d in enumerate(args.periods.split(","))
        ]:
            measure(db, scope, Period(now - timedelta(days=days), now + timedelta(seconds=1)), days, runs)
    finally:
        db.dispose()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
