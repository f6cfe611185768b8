"""Leads remember whether a portal's mail was verified (issue 15: spoofed portals caught).

Revision ID: 0004_parse
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_parse"
down_revision = "0005_pipeline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a column with a constraint otherwise (none here, but the
    # lead re-chains migrations and batch mode is the one shape that works on both).
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("sender_verification", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("sender_verification")
