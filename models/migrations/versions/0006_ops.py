"""Operations monitoring: the scheduler's heartbeat and the end-to-end probe's runs.

Revision ID: 0006_ops
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_ops"
down_revision = "0007_report"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ops_heartbeats",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("lag_seconds", sa.Float(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ops_heartbeats")),
    )
    op.create_table(
        "probe_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dealer_id", sa.String(64), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_runs")),
        sa.UniqueConstraint("token", name=op.f("uq_probe_runs_token")),
    )
    op.create_index("ix_probe_runs_dealer_started", "probe_runs", ["dealer_id", "started_at"])
    # The latest finished run per dealer (every scrape of /metrics, every health verdict).
    op.create_index("ix_probe_runs_dealer_state_id", "probe_runs", ["dealer_id", "state", "id"])
    # The silence alarm counts a dealer's leads in time windows.
    op.create_index("ix_leads_dealer_created", "leads", ["dealer_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_leads_dealer_created", table_name="leads")
    op.drop_index("ix_probe_runs_dealer_state_id", table_name="probe_runs")
    op.drop_index("ix_probe_runs_dealer_started", table_name="probe_runs")
    op.drop_table("probe_runs")
    op.drop_table("ops_heartbeats")
