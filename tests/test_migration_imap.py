"""Migration 0003_imap builds exactly the tables the models declare, on both databases, and
steps back down cleanly."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from models.db import Database
from models.migrate import alembic_config, upgrade
from models.tables import Base

OURS = {"oauth_tokens", "oauth_pending", "imap_skipped", "imap_status"}


def _differences(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)

    def table_of(diff: Any) -> str:
        item = diff[0] if isinstance(diff, list) else diff  # modify_* come in lists
        if item[0] in ("add_table", "remove_table"):
            return str(item[1].name)
        if item[0].endswith(("_index", "_constraint", "_fk")):
            return str(item[1].table.name)
        return str(item[2])  # add_column, remove_column, modify_*: (kind, schema, table, …)

    return [d for d in diffs if table_of(d) in OURS]


def test_the_imap_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    db = Database(db_url)
    try:
        upgrade(db)
        assert _differences(db) == []
        columns = {c["name"] for c in inspect(db.engine).get_columns("imap_status")}
        assert {"error_kind", "failing_since"} <= columns
        config = alembic_config(db.url)
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        tables = set(inspect(db.engine).get_table_names())
        assert not tables & {"oauth_tokens", "oauth_pending", "imap_skipped"}
        assert "error_kind" not in {c["name"] for c in inspect(db.engine).get_columns("imap_status")}
        upgrade(db)
        assert _differences(db) == []
    finally:
        db.dispose()
