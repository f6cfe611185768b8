"""One escalation scheduler pass over 1,000,000 open leads of which 1,000 are due, against the
same pass when nothing is due (the cost of finding nothing), in the same run.

    .venv/bin/python bench/scheduler_pass.py [--leads 1000000] [--due 1000] [--rounds 3]
    .venv/bin/python bench/scheduler_pass.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

SQLite by default (a fresh file); with --postgres a throw-away database on that server. The
not-due leads are inserted with one INSERT … SELECT; the due ones through the ORM. Each round
makes the same 1,000 leads due again. Prints the median seconds of each pass and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import bindparam, delete, insert, select, text, update

from models.config_apply import apply_config
from models.db import Database
from models.dealer_config import load_config_file
from models.migrate import upgrade
from models.tables import Contact, EscalationEvent, Lead, LeadActivity, OutboundMessage, User, UTCDateTime
from workers.escalations import run_pass

ALWAYS_OPEN = """
[[dealers]]
id = "muster"
name = "Autohaus Muster GmbH"
mailboxes = ["muster@leads.example.com"]
[dealers.hours]
mon = "00:00-24:00"
tue = "00:00-24:00"
wed = "00:00-24:00"
thu = "00:00-24:00"
fri = "00:00-24:00"
sat = "00:00-24:00"
sun = "00:00-24:00"
[[dealers.users]]
id = "max"
name = "Max"
email = "max@example.com"
role = "supervisor"
[[dealers.users]]
id = "anna"
name = "Anna"
email = "anna@example.com"
supervisor = "max"
[dealers.distribution]
default = { method = "round_robin", users = ["anna"] }
"""


def populate(db: Database, total: int, due: int, now: datetime) -> list[int]:
    with db.session() as session:
        anna = session.scalars(select(User).where(User.username == "anna")).one()
        contact = Contact(
            dealer_id="muster", email="x@example.org", created_at=now, updated_at=now, details={}
        )
        session.add(contact)
        session.flush()
        contact_id, editor_id = contact.id, anna.id
    series = (
        "generate_series(1, :n) AS x"
        if db.engine.dialect.name == "postgresql"
        else "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n) SELECT x FROM c)"
    )
    columns = (
        'dealer_id, contact_id, editor_id, ordinal, type, "group", status, vehicle, trade_ins, links, format,'
        " due_at, due_kind, due_version, due_set_at, next_event_at, created_at, last_activity_at"
    )
    statement = text(
        f"INSERT INTO leads ({columns})"
        f" SELECT 'muster', :contact, :editor, 0, 'general', 'default', 'open', '{{}}', '[]', '[]', 'mail',"
        f" :later, 'stage1', 1, :now, :later, :now, :now FROM {series}"
    ).bindparams(bindparam("later", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))
    with db.session() as session:
        session.execute(
            statement,
            {
                "n": total - due,
                "contact": contact_id,
                "editor": editor_id,
                "later": now + timedelta(days=2),
                "now": now,
            },
        )
        ids = session.scalars(
            insert(Lead).returning(Lead.id),
            [
                {
                    "dealer_id": "muster",
                    "contact_id": contact_id,
                    "editor_id": editor_id,
                    "status": "open",
                    "due_at": now,
                    "due_set_at": now - timedelta(hours=2),
                    "next_event_at": now,
                    "created_at": now,
                    "last_activity_at": now,
                    "vehicle": {},
                    "trade_ins": [],
                    "links": [],
                    "ordinal": 0,
                }
                for _ in range(due)
            ],
        ).all()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE leads"))
            conn.commit()
    return list(ids)


def make_due_again(db: Database, ids: list[int], now: datetime) -> None:
    with db.session() as session:
        session.execute(delete(EscalationEvent).where(EscalationEvent.lead_id.in_(ids)))
        session.execute(delete(LeadActivity).where(LeadActivity.lead_id.in_(ids)))
        session.execute(delete(OutboundMessage).where(OutboundMessage.lead_id.in_(ids)))
        session.execute(update(Lead).where(Lead.id.in_(ids)).values(next_event_at=now, due_at=now))


def timed(db: Database, now: datetime) -> tuple[float, int]:
    start = time.perf_counter()
    result = run_pass(db, now=now, grace=timedelta(seconds=60))
    return time.perf_counter() - start, sum(result.fired.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres", metavar="SERVER_URL", help="measure on a scratch database on this server"
    )
    args = parser.parse_args()
    scratch = None
    if args.postgres:
        from smtp_accept import ScratchPostgres  # type: ignore[import-not-found]

        scratch = ScratchPostgres(args.postgres)
        url = scratch.url
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='lms-bench-')}/bench.db"
    db = Database(url)
    try:
        upgrade(db)
        config = Path(tempfile.mkdtemp()) / f"{uuid.uuid4().hex}.toml"
        config.write_text(ALWAYS_OPEN)
        with db.session() as session:
            apply_config(session, load_config_file(config), now=datetime.now(UTC))
        now = datetime.now(UTC)
        started = time.perf_counter()
        ids = populate(db, args.leads, args.due, now)
        print(
            f"{db.engine.dialect.name}: {args.leads:,} open leads, {args.due:,} due "
            f"(inserted in {time.perf_counter() - started:.0f}s)"
        )
        busy, idle = [], []
        for _ in range(args.rounds):
            make_due_again(db, ids, now)
            seconds, fired = timed(db, now + timedelta(seconds=1))
            assert fired == args.due, fired
            busy.append(seconds)
            idle.append(timed(db, now + timedelta(seconds=1))[0])
        b, i = statistics.median(busy), statistics.median(idle)
        print(f"pass with {args.due:,} due:  {b * 1000:9.1f} ms  ({b / args.due * 1e6:.0f} µs per due lead)")
        print(f"pass with nothing due: {i * 1000:9.2f} ms")
        print(f"ratio:                 {b / i:9.0f}x")
    finally:
        db.dispose()
        if scratch:
            scratch.drop()


if __name__ == "__main__":
    main()
