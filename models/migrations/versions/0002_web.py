"""The web pane: accounts, sessions, API tokens, invitations, sign-in throttling; who manages a
completion reason; indexes for the leads list (and trigram indexes for its search on PostgreSQL).

Revision ID: 0002_web
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_web"
down_revision = "0003_imap"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)

# Expressions the search compares with LIKE '%…%' (see models.lead_views.search_clause).
TRIGRAM_INDEXES = [
    ("ix_leads_subject_trgm", "leads", "lower(subject)"),
    ("ix_leads_message_trgm", "leads", "lower(message)"),
    ("ix_leads_vehicle_trgm", "leads", "lower(CAST(vehicle AS TEXT))"),
    ("ix_contacts_name_trgm", "contacts", "lower(name)"),
    ("ix_contacts_email_trgm", "contacts", "lower(email)"),
    ("ix_contacts_phone_trgm", "contacts", "phone"),
]


def _trigrams_available() -> bool:
    """pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it. Where it
    is not shipped, search still works, only without the index."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar()
    )


def upgrade() -> None:
    op.create_table(
        "web_accounts",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("password_changed_at", WHEN, nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_web_accounts_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_web_accounts")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_used_at", WHEN, nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_table(
        "web_invitations",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_web_invitations_user_id_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_invitations")),
    )
    op.create_index(op.f("ix_web_invitations_user_id"), "web_invitations", ["user_id"])
    op.create_table(
        "web_sign_in_failures",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sign_in_failures")),
    )
    op.create_index("ix_web_sign_in_failures_key_at", "web_sign_in_failures", ["key", "at"])

    with op.batch_alter_table("completion_reasons") as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=8), nullable=False, server_default="file"))

    op.create_index("ix_leads_dealer_status_activity", "leads", ["dealer_id", "status", "last_activity_at"])
    op.create_index("ix_leads_dealer_status_due", "leads", ["dealer_id", "status", "due_at"])
    op.create_index("ix_leads_editor_status_activity", "leads", ["editor_id", "status", "last_activity_at"])

    if _trigrams_available():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, table, expression in TRIGRAM_INDEXES:
            op.execute(f"CREATE INDEX {name} ON {table} USING gin (({expression}) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _table, _expression in TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_leads_editor_status_activity", table_name="leads")
    op.drop_index("ix_leads_dealer_status_due", table_name="leads")
    op.drop_index("ix_leads_dealer_status_activity", table_name="leads")
    with op.batch_alter_table("completion_reasons") as batch_op:
        batch_op.drop_column("origin")
    op.drop_index("ix_web_sign_in_failures_key_at", table_name="web_sign_in_failures")
    op.drop_table("web_sign_in_failures")
    op.drop_index(op.f("ix_web_invitations_user_id"), table_name="web_invitations")
    op.drop_table("web_invitations")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index(op.f("ix_web_sessions_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("web_accounts")
