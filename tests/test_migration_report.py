"""Migration 0007_report: the tables match the models on both databases, it steps down cleanly,
and its backfill gives every existing lead the same response-time facts the running system
keeps as things happen (a dealer's history from before the upgrade counts in its reports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from models.migrate import alembic_config, upgrade
from models.report_tables import LeadFact
from models.tables import Base
from tests.support.speed import SpeedStack
from tests.test_report import _probe_lead, _scenario

OURS = {"lead_facts", "report_preferences", "webhook_deliveries"}


def _differences(db: Any) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)

    def table_of(diff: Any) -> str:
        item = diff[0] if isinstance(diff, list) else diff
        if item[0] in ("add_table", "remove_table"):
            return str(item[1].name)
        if item[0].endswith(("_index", "_constraint", "_fk")):
            return str(item[1].table.name)
        return str(item[2])

    return [d for d in diffs if table_of(d) in OURS]


def _facts(db: Any) -> dict[int, dict[str, Any]]:
    with db.read() as session:
        return {
            f.lead_id: {
                c.name: getattr(f, c.name) for c in LeadFact.__table__.columns if c.name != "updated_at"
            }
            for f in session.scalars(select(LeadFact))
        }


def test_the_backfill_gives_existing_leads_the_facts_the_system_keeps(db_url: str, tmp_path: Path) -> None:
    speed = SpeedStack(db_url, outbox=tmp_path / "outbox")
    try:
        db = speed.db
        assert _differences(db) == []
        _scenario(speed)
        probe = _probe_lead(speed, "2026-11-12T10:00")
        kept = _facts(db)
        assert len(kept) == 14 and probe not in kept

        config = alembic_config(db.url)
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0008_privacy")  # the revision before
        assert not set(inspect(db.engine).get_table_names()) & OURS

        upgrade(db)  # the leads are there: their facts are computed from their history
        assert _differences(db) == []
        assert _facts(db) == kept
    finally:
        speed.close()
