"""The leads list page and a search over 100,000 leads on PostgreSQL, against the same list query
run bare through SQLAlchemy in the same run: the ratio is the cost of the page around the query.

    .venv/bin/python bench/web_list.py [--leads 100000] [--requests 60]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

A throw-away database on that server gets the demo dealer's people (admin, two teams), 100,000
leads with contacts (15 % open, the rest completed, over two years) and ANALYZE. ``lms web`` runs
as its own process; the client signs in through the form as the admin (the widest scope: the
whole dealer) and asks for pages over HTTP with one connection. The bare side runs the query the
page needs (count and one page of 50 leads, same filters and scope) in this process. Then the
search is run bare once more without the trigram indexes, to show what they are worth.
Prints p50/p95 in milliseconds for each.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from models.config_apply import apply_config  # noqa: E402
from models.db import Database  # noqa: E402
from models.dealer_config import load_config_file  # noqa: E402
from models.lead_scope import scope_for  # noqa: E402
from models.lead_views import count, lead_query  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.tables import Contact, Lead, Source, User  # noqa: E402
from workers.accounts import set_password  # noqa: E402

PASSWORD = "bench-password-1"
TRIGRAM_INDEXES = [
    f"ix_{name}_trgm"
    for name in (
        "leads_subject",
        "leads_message",
        "leads_vehicle",
        "contacts_name",
        "contacts_email",
        "contacts_phone",
    )
]
FIRST = ["Erika", "Jan", "Julia", "Thomas", "Sabine", "Murat", "Anna", "Lukas", "Mia", "Paul", "Lea", "Felix"]
LAST = ["Mustermann", "Weber", "Klein", "Wolf", "Yilmaz", "Schmidt", "Becker", "Hoffmann", "Koch", "Richter"]
CARS = [
    ("VW", "Golf"),
    ("BMW", "320d"),
    ("Audi", "A4"),
    ("Skoda", "Octavia"),
    ("Opel", "Zafira"),
    ("Mercedes", "C 200"),
    ("Ford", "Focus"),
    ("Toyota", "Corolla"),
    ("Seat", "Leon"),
    ("Kia", "Ceed"),
]
TYPES = ["test_drive", "used_car", "new_car", "financing", "trade_in", "leasing", "general"]
FILLER = (
    "Guten Tag, ich interessiere mich für das Fahrzeug aus Ihrem Inserat und hätte gern ein Angebot. "
    "Ist eine Probefahrt am Wochenende möglich? Eine Inzahlungnahme meines jetzigen Wagens wäre schön. "
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed(run: Callable[[], object], n: int) -> list[float]:
    run()  # warm
    out = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        out.append((time.perf_counter() - start) * 1000)
    return out


def fill(db: Database, leads: int) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    with db.session() as session:
        users = list(session.scalars(select(User.id).where(User.dealer_id == "muster")))
        source = Source(dealer_id="muster", name="mobile.de", rules={})
        session.add(source)
        session.flush()
        source_id = source.id
    batch = 5000
    for start in range(0, leads, batch):
        contacts = []
        for n in range(start, min(leads, start + batch)):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            contacts.append(
                {
                    "dealer_id": "muster",
                    "name": f"{first} {last}",
                    "email": f"{first}.{last}{n}@example.org".lower(),
                    "phone": f"+49171{n:07d}",
                    "details": {},
                    "created_at": now,
                    "updated_at": now,
                }
            )
        with db.session() as session:
            ids = list(session.scalars(insert(Contact).returning(Contact.id), contacts))
            rows = []
            for contact_id in ids:
                make, model = rng.choice(CARS)
                is_open = rng.random() < 0.15
                activity = now - timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
                rows.append(
                    {
                        "dealer_id": "muster",
                        "contact_id": contact_id,
                        "ordinal": 0,
                        "type": rng.choice(TYPES),
                        "source_id": source_id,
                        "editor_id": rng.choice([*users, None]),
                        "group": "default",
                        "status": "open" if is_open else "completed",
                        "subject": f"Anfrage {make} {model}",
                        "message": FILLER * rng.randint(1, 3),
                        "vehicle": {"make": make, "model": model, "year": 2021},
                        "trade_ins": [],
                        "links": [],
                        "format": "mail",
                        "created_at": activity,
                        "last_activity_at": activity,
                        "due_at": activity + timedelta(hours=rng.randint(-48, 48)) if is_open else None,
                        "due_kind": "stage1",
                        "due_version": 1,
                    }
                )
            session.execute(insert(Lead), rows)
    with db.engine.connect() as conn:
        # What autovacuum does on a live database: statistics and the visibility map (index-only scans).
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    # A customer looked up by phone as people type it (one lead, open or completed: all
    # statuses), and a model name that one open lead in ten mentions (thousands of matches).
    parser.add_argument("--search", default="0171 0004711")
    parser.add_argument("--broad-search", default="zafira")
    args = parser.parse_args()

    base = args.postgres.rsplit("/", 1)[0]
    name = f"lms_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = args.postgres.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    db = Database(url)
    server = None
    try:
        upgrade(db)
        with db.session() as session:
            apply_config(
                session, load_config_file(ROOT / "tests/fixtures/dealers_web.toml"), now=datetime.now(UTC)
            )
            olga = session.scalar(select(User).where(User.username == "olga"))
            assert olga is not None
            set_password(session, olga, PASSWORD, now=datetime.now(UTC))
        started = time.perf_counter()
        fill(db, args.leads)
        print(f"{args.leads:,} leads inserted in {time.perf_counter() - started:.0f} s")

        port = random.randint(30000, 32000)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LMS_")},
            "LMS_DATABASE_URL": url,
            "LMS_WEB_LISTEN": f"127.0.0.1:{port}",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "lms", "web"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        for _ in range(200):
            try:
                login = client.get("/login")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        token = re.search(r'name="csrf_token" value="([^"]*)"', login.text).group(1)  # type: ignore[union-attr]
        signed = client.post(
            "/login", data={"dealer": "muster", "user": "olga", "password": PASSWORD, "csrf_token": token}
        )
        assert signed.status_code == 303, signed.text

        with db.session() as session:
            admin = session.scalar(select(User).where(User.username == "olga"))
            assert admin is not None
            scope = scope_for(session, admin)

        def bare(search: str | None, status: str | None = "open") -> Callable[[], object]:
            def run() -> object:
                now = datetime.now(UTC)
                with db.session() as session:
                    query = lead_query(session, now=now, scope=scope, status=status, search=search)
                    total = count(session, query)
                    page = list(session.scalars(query.limit(50)).unique())
                    return total, page

            return run

        def page(path: str) -> Callable[[], object]:
            def run() -> object:
                response = client.get(path)
                assert response.status_code == 200 and "lead-row" in response.text
                return response

            return run

        results = {
            "list page (GET /leads)": timed(page("/leads"), args.requests),
            "list query bare": timed(bare(None), args.requests),
        }
        searches = {args.search: None, args.broad_search: "open"}  # term: status filter
        for term, status in searches.items():
            path = f"/leads?q={term}" + ("" if status else "&status=")
            results[f"search page (GET /leads?q={term})"] = timed(page(path), args.requests)
            results[f"search query bare ({term})"] = timed(bare(term, status), args.requests)
        with db.session() as session:
            trigram = session.execute(
                text("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%trgm'")
            ).scalar()
            matching = {
                term: count(
                    session,
                    lead_query(session, now=datetime.now(UTC), scope=scope, status=status, search=term),
                )
                for term, status in searches.items()
            }
            for index in TRIGRAM_INDEXES:
                session.execute(text(f"DROP INDEX IF EXISTS {index}"))
        for term, status in searches.items():
            results[f"search query bare ({term}), no trigram indexes"] = timed(
                bare(term, status), max(10, args.requests // 3)
            )
        print(
            f"PostgreSQL, {args.leads:,} leads ({trigram} trigram indexes), leads matching "
            f"{matching}; admin scope (whole dealer); machine shared"
        )
        print(f"{'what':<62} {'p50 ms':>8} {'p95 ms':>8}")
        for what, values in results.items():
            print(f"{what:<62} {statistics.median(values):>8.1f} {percentile(values, 0.95):>8.1f}")
        ratios = {
            "list": statistics.median(results["list page (GET /leads)"])
            / statistics.median(results["list query bare"]),
            **{
                term: statistics.median(results[f"search page (GET /leads?q={term})"])
                / statistics.median(results[f"search query bare ({term})"])
                for term in (args.search, args.broad_search)
            },
        }
        print("page / bare (p50): " + ", ".join(f"{what} {ratio:.1f}" for what, ratio in ratios.items()))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
        db.dispose()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
