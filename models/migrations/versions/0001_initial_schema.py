"""Initial schema: dealers, mailboxes, users, contacts, leads, activities, in- and outbound mail.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 11:26:10.311145
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SYSTEM_COMPLETION_REASONS = [
    ("sold", "Vehicle sold"),
    ("bought_elsewhere", "Bought elsewhere"),
    ("no_interest", "No longer interested"),
    ("unreachable", "Customer unreachable"),
    ("duplicate", "Duplicate enquiry"),
    ("spam", "Spam or test"),
]


def upgrade() -> None:

    op.create_table(
        "dealers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("forward_to", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dealers")),
    )
    op.create_table(
        "imap_ledger",
        sa.Column("account", sa.String(length=400), nullable=False),
        sa.Column("folder", sa.String(length=300), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "folder", "uidvalidity", name=op.f("pk_imap_ledger")),
    )
    op.create_table(
        "imap_status",
        sa.Column("account", sa.String(length=400), nullable=False),
        sa.Column("folder", sa.String(length=300), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taken", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_imap_status")),
    )
    op.create_table(
        "completion_reasons",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dealer_id", sa.String(length=64), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dealer_id"], ["dealers.id"], name=op.f("fk_completion_reasons_dealer_id_dealers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_completion_reasons")),
        sa.UniqueConstraint("dealer_id", "code", name=op.f("uq_completion_reasons_dealer_id_code")),
    )
    op.create_table(
        "contacts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dealer_id"], ["dealers.id"], name=op.f("fk_contacts_dealer_id_dealers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_dealer_email", ["dealer_id", "email"], unique=False)
        batch_op.create_index("ix_contacts_dealer_phone", ["dealer_id", "phone"], unique=False)

    op.create_table(
        "inbound_messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("envelope_from", sa.String(length=320), nullable=False),
        sa.Column("envelope_to", sa.JSON(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dealer_id"], ["dealers.id"], name=op.f("fk_inbound_messages_dealer_id_dealers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("dealer_id", "sha256", name=op.f("uq_inbound_messages_dealer_id_sha256")),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_messages_message_id"), ["message_id"], unique=False)
        batch_op.create_index("ix_inbound_state_next", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "mailboxes",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["dealer_id"], ["dealers.id"], name=op.f("fk_mailboxes_dealer_id_dealers")),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_mailboxes")),
    )
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mailboxes_dealer_id"), ["dealer_id"], unique=False)

    op.create_table(
        "rotation_counters",
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dealer_id"], ["dealers.id"], name=op.f("fk_rotation_counters_dealer_id_dealers")
        ),
        sa.PrimaryKeyConstraint("dealer_id", "key", name=op.f("pk_rotation_counters")),
    )
    op.create_table(
        "sources",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dealer_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["dealer_id"], ["dealers.id"], name=op.f("fk_sources_dealer_id_dealers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("dealer_id", "name", name=op.f("uq_sources_dealer_id_name")),
    )
    op.create_table(
        "users",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("supervisor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("max_open", sa.Integer(), nullable=True),
        sa.Column("absences", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["dealer_id"], ["dealers.id"], name=op.f("fk_users_dealer_id_dealers")),
        sa.ForeignKeyConstraint(["supervisor_id"], ["users.id"], name=op.f("fk_users_supervisor_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("dealer_id", "username", name=op.f("uq_users_dealer_id_username")),
    )
    op.create_table(
        "leads",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("inbound_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("editor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("group", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("vehicle", sa.JSON(), nullable=False),
        sa.Column("trade_ins", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("reply_token", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_kind", sa.String(length=16), nullable=False),
        sa.Column("due_version", sa.Integer(), nullable=False),
        sa.Column("due_set_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reacted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "completion_reason_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["completion_reason_id"],
            ["completion_reasons.id"],
            name=op.f("fk_leads_completion_reason_id_completion_reasons"),
        ),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_leads_contact_id_contacts")),
        sa.ForeignKeyConstraint(["dealer_id"], ["dealers.id"], name=op.f("fk_leads_dealer_id_dealers")),
        sa.ForeignKeyConstraint(["editor_id"], ["users.id"], name=op.f("fk_leads_editor_id_users")),
        sa.ForeignKeyConstraint(
            ["inbound_id"], ["inbound_messages.id"], name=op.f("fk_leads_inbound_id_inbound_messages")
        ),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_leads_source_id_sources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("inbound_id", "ordinal", name=op.f("uq_leads_inbound_id_ordinal")),
        sa.UniqueConstraint("reply_token", name=op.f("uq_leads_reply_token")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leads_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index("ix_leads_contact_status", ["contact_id", "status"], unique=False)
        batch_op.create_index("ix_leads_dealer_external", ["dealer_id", "external_id"], unique=False)
        batch_op.create_index("ix_leads_dealer_fingerprint", ["dealer_id", "fingerprint"], unique=False)
        batch_op.create_index("ix_leads_dealer_status", ["dealer_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_leads_next_event_at"), ["next_event_at"], unique=False)

    op.create_table(
        "escalation_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("lead_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("due_version", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_escalation_events_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_events")),
        sa.UniqueConstraint(
            "lead_id", "stage", "due_version", name=op.f("uq_escalation_events_lead_id_stage_due_version")
        ),
    )
    op.create_table(
        "outbound_messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("envelope_from", sa.String(length=320), nullable=False),
        sa.Column("envelope_to", sa.JSON(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dealer_id"], ["dealers.id"], name=op.f("fk_outbound_messages_dealer_id_dealers")
        ),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_outbound_messages_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbound_messages_message_id")),
        sa.UniqueConstraint("purpose", name=op.f("uq_outbound_messages_purpose")),
    )
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_dealer_kind_rcpt", ["dealer_id", "kind", "recipient", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbound_messages_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index("ix_outbound_state_next", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "lead_activities",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("lead_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("inbound_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("outbound_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name=op.f("fk_lead_activities_inbound_id_inbound_messages"),
        ),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_lead_activities_lead_id_leads")),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["outbound_messages.id"],
            name=op.f("fk_lead_activities_outbound_id_outbound_messages"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_lead_activities_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_activities")),
    )
    with op.batch_alter_table("lead_activities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_activities_lead_id"), ["lead_id"], unique=False)

    # System completion reasons every dealer has; dealers may rename, hide or add their own.
    reasons = sa.table(
        "completion_reasons",
        sa.column("dealer_id", sa.String),
        sa.column("code", sa.String),
        sa.column("label", sa.String),
        sa.column("hidden", sa.Boolean),
    )
    op.bulk_insert(
        reasons,
        [
            {"dealer_id": None, "code": code, "label": label, "hidden": False}
            for code, label in SYSTEM_COMPLETION_REASONS
        ],
    )


def downgrade() -> None:

    with op.batch_alter_table("lead_activities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_activities_lead_id"))

    op.drop_table("lead_activities")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_state_next")
        batch_op.drop_index(batch_op.f("ix_outbound_messages_lead_id"))
        batch_op.drop_index("ix_outbound_dealer_kind_rcpt")

    op.drop_table("outbound_messages")
    op.drop_table("escalation_events")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_next_event_at"))
        batch_op.drop_index("ix_leads_dealer_status")
        batch_op.drop_index("ix_leads_dealer_fingerprint")
        batch_op.drop_index("ix_leads_dealer_external")
        batch_op.drop_index("ix_leads_contact_status")
        batch_op.drop_index(batch_op.f("ix_leads_contact_id"))

    op.drop_table("leads")
    op.drop_table("users")
    op.drop_table("sources")
    op.drop_table("rotation_counters")
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailboxes_dealer_id"))

    op.drop_table("mailboxes")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_state_next")
        batch_op.drop_index(batch_op.f("ix_inbound_messages_message_id"))

    op.drop_table("inbound_messages")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_dealer_phone")
        batch_op.drop_index("ix_contacts_dealer_email")

    op.drop_table("contacts")
    op.drop_table("completion_reasons")
    op.drop_table("imap_status")
    op.drop_table("imap_ledger")
    op.drop_table("dealers")
