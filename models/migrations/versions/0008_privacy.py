"""Data protection: the audit log of who read or changed a lead, and marks for erased personal
data and deleted raw mails (the rows stay, so counts and reports do).

Revision ID: 0008_privacy
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_privacy"
down_revision = "0002_web"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dealer_id", sa.String(64), nullable=False),
        sa.Column("user_id", Id, nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("lead_id", Id, nullable=True),
        sa.Column("contact_id", Id, nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["dealer_id"], ["dealers.id"], name=op.f("fk_audit_log_dealer_id_dealers")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id_users")),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_audit_log_lead_id_leads")),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_audit_log_contact_id_contacts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_lead_at", "audit_log", ["lead_id", "at"])
    op.create_index("ix_audit_log_dealer_at", "audit_log", ["dealer_id", "at"])
    op.create_index(op.f("ix_audit_log_contact_id"), "audit_log", ["contact_id"])
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("raw_deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_inbound_dealer_received", ["dealer_id", "received_at"])
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("raw_deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_outbound_dealer_created", ["dealer_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_index("ix_outbound_dealer_created")
        batch.drop_column("raw_deleted_at")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_index("ix_inbound_dealer_received")
        batch.drop_column("raw_deleted_at")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("anonymised_at")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("erased_at")
    op.drop_table("audit_log")
