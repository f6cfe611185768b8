"""Speed to lead and webhooks: response-time facts per lead (backfilled here for every lead
there is), a person's choice about the weekly summary, the webhook outbox.

The backfill computes in Python with the same pure rule the running system uses
(``models.response_facts``), dealer by dealer, a thousand leads per batch. It reads the tables
through plain table definitions of its own, not the models, so later changes to the models do
not change what this migration does.

Revision ID: 0007_report
Revises: 0002_web
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007_report"
down_revision = "0008_privacy"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
BATCH = 1000


def upgrade() -> None:
    op.create_table(
        "lead_facts",
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("arrived_at", WHEN, nullable=False),
        sa.Column("arrived_day", sa.Date(), nullable=False),
        sa.Column("arrived_week", sa.Date(), nullable=False),
        sa.Column("seller_id", ID, nullable=True),
        sa.Column("source_id", ID, nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("stage1_due_at", WHEN, nullable=True),
        sa.Column("first_answer_at", WHEN, nullable=True),
        sa.Column("first_answer_kind", sa.String(length=16), nullable=True),
        sa.Column("first_answer_by", ID, nullable=True),
        sa.Column("first_answer_working_seconds", sa.Integer(), nullable=True),
        sa.Column("first_answer_wall_seconds", sa.Integer(), nullable=True),
        sa.Column("answered_within_stage1", sa.Boolean(), nullable=False),
        sa.Column("escalated_stage1", sa.Boolean(), nullable=False),
        sa.Column("escalated_stage2", sa.Boolean(), nullable=False),
        sa.Column("completed_at", WHEN, nullable=True),
        sa.Column("completion_reason", sa.String(length=64), nullable=True),
        sa.Column("completion_working_seconds", sa.Integer(), nullable=True),
        sa.Column("completion_wall_seconds", sa.Integer(), nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_facts_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_facts")),
    )
    op.create_index("ix_lead_facts_dealer_arrived", "lead_facts", ["dealer_id", "arrived_at"])
    op.create_table(
        "report_preferences",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("weekly_summary", sa.Boolean(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_report_preferences_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_report_preferences")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("dealer_id", sa.String(length=64), nullable=False),
        sa.Column("subscription", sa.String(length=300), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=True),
        sa.Column("delivered_at", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_deliveries_event_id")),
    )
    op.create_index(
        "ix_webhook_deliveries_subscription",
        "webhook_deliveries",
        ["dealer_id", "subscription", "state", "id"],
    )
    op.create_index("ix_webhook_deliveries_state_next", "webhook_deliveries", ["state", "next_attempt_at"])
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_state_next", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_subscription", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("report_preferences")
    op.drop_index("ix_lead_facts_dealer_arrived", table_name="lead_facts")
    op.drop_table("lead_facts")


# -- the backfill ---------------------------------------------------------------------------------
_dealers = sa.table("dealers", sa.column("id"), sa.column("timezone"), sa.column("config", sa.JSON))
_leads = sa.table(
    "leads",
    *(
        sa.column(name)
        for name in (
            "id",
            "dealer_id",
            "inbound_id",
            "type",
            "source_id",
            "editor_id",
            "status",
            "format",
            "due_version",
            "due_kind",
            "completion_reason_id",
        )
    ),
    *(sa.column(name, WHEN) for name in ("created_at", "due_at", "completed_at")),
)
_inbound = sa.table("inbound_messages", sa.column("id"), sa.column("received_at", WHEN))
_reasons = sa.table("completion_reasons", sa.column("id"), sa.column("code"))
_activities = sa.table(
    "lead_activities",
    sa.column("lead_id"),
    sa.column("kind"),
    sa.column("user_id"),
    sa.column("id"),
    sa.column("at", WHEN),
)
_events = sa.table(
    "escalation_events",
    sa.column("lead_id"),
    sa.column("stage"),
    sa.column("due_version"),
    sa.column("outcome"),
    sa.column("due_at", WHEN),
    sa.column("fired_at", WHEN),
)
_facts = sa.table(
    "lead_facts",
    *(sa.column(name) for name in ("lead_id", "dealer_id", "seller_id", "source_id", "type")),
    *(sa.column(name) for name in ("first_answer_kind", "first_answer_by", "completion_reason")),
    *(
        sa.column(name, sa.Integer)
        for name in (
            "first_answer_working_seconds",
            "first_answer_wall_seconds",
            "completion_working_seconds",
            "completion_wall_seconds",
        )
    ),
    *(
        sa.column(name, sa.Boolean)
        for name in ("answered_within_stage1", "escalated_stage1", "escalated_stage2")
    ),
    *(
        sa.column(name, WHEN)
        for name in ("arrived_at", "stage1_due_at", "first_answer_at", "completed_at", "updated_at")
    ),
    sa.column("arrived_day", sa.Date),
    sa.column("arrived_week", sa.Date),
)


def _utc(value: Any) -> Any:
    """SQLite gives naive datetimes back (stored as UTC)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _rules(config: dict[str, Any], timezone: str) -> tuple[Any, Any, list[str]]:
    from models.business_calendar import BusinessCalendar
    from models.dealer_config import DealerConfig, HoursConfig
    from models.escalation import EscalationRules
    from models.response_facts import DEFAULT_ANSWERED_REASONS

    try:
        dealer = DealerConfig.model_validate(config)
        return (
            BusinessCalendar.from_schema(dealer.timezone, dealer.hours),
            EscalationRules.from_schema(dealer.escalation),
            list(dealer.reports.answered_reasons),
        )
    except Exception:  # a stored configuration today's schema refuses: its hours as written
        from models.dealer_config import EscalationConfig

        hours = HoursConfig.model_validate(config.get("hours") or {})
        return (
            BusinessCalendar.from_schema(timezone, hours),
            EscalationRules.from_schema(EscalationConfig()),
            list(DEFAULT_ANSWERED_REASONS),
        )


def backfill(bind: sa.Connection) -> int:
    """Facts for every lead that has none (probe leads never get any); returns how many."""
    from models.escalation import first_due
    from models.response_facts import Answer, LeadHistory, compute_facts

    now = datetime.now(UTC)
    written = 0
    codes = dict(bind.execute(sa.select(_reasons.c.id, _reasons.c.code)).all())
    for dealer_id, timezone, config in bind.execute(
        sa.select(_dealers.c.id, _dealers.c.timezone, _dealers.c.config)
    ):
        calendar, escalation, answered_reasons = _rules(config or {}, timezone)
        last_id = 0
        while True:
            leads = (
                bind.execute(
                    sa.select(_leads, _inbound.c.received_at)
                    .select_from(_leads.outerjoin(_inbound, _inbound.c.id == _leads.c.inbound_id))
                    .where(_leads.c.dealer_id == dealer_id, _leads.c.id > last_id)
                    .where(sa.or_(_leads.c.format.is_(None), _leads.c.format != "probe"))
                    .order_by(_leads.c.id)
                    .limit(BATCH)
                )
                .mappings()
                .all()
            )
            if not leads:
                break
            last_id = leads[-1]["id"]
            ids = [lead["id"] for lead in leads]
            replies: dict[int, Answer] = {}
            for lead_id, at, user_id in bind.execute(
                sa.select(_activities.c.lead_id, _activities.c.at, _activities.c.user_id)
                .where(_activities.c.lead_id.in_(ids), _activities.c.kind == "reply")
                .order_by(_activities.c.lead_id, _activities.c.at, _activities.c.id)
            ):
                replies.setdefault(lead_id, Answer(_utc(at), "reply", user_id))
            escalations: dict[int, list[tuple[str, datetime]]] = {}
            first_stage1: dict[int, datetime] = {}
            for lead_id, stage, version, due_at, fired_at in bind.execute(
                sa.select(
                    _events.c.lead_id,
                    _events.c.stage,
                    _events.c.due_version,
                    _events.c.due_at,
                    _events.c.fired_at,
                ).where(_events.c.lead_id.in_(ids), _events.c.outcome != "skipped")
            ):
                if stage in ("stage1", "stage2"):
                    escalations.setdefault(lead_id, []).append((stage, _utc(fired_at)))
                if stage == "stage1" and version == 1:
                    first_stage1[lead_id] = _utc(due_at)
            rows = []
            for lead in leads:
                arrived = _utc(lead["received_at"] or lead["created_at"])
                if lead["due_version"] == 1 and lead["due_kind"] == "stage1":
                    stage1_due = _utc(lead["due_at"])
                else:
                    stage1_due = first_stage1.get(lead["id"]) or first_due(arrived, calendar, escalation)
                completed = lead["status"] == "completed" and lead["completed_at"] is not None
                history = LeadHistory(
                    arrived_at=arrived,
                    stage1_due_at=stage1_due,
                    editor_id=lead["editor_id"],
                    first_reply=replies.get(lead["id"]),
                    completed_at=_utc(lead["completed_at"]) if completed else None,
                    completion_reason=codes.get(lead["completion_reason_id"]) if completed else None,
                    completed_by=lead["editor_id"],
                    escalations=escalations.get(lead["id"], ()),
                )
                facts = compute_facts(history, calendar, answered_reasons)
                rows.append(
                    {
                        **facts.as_row(),
                        "lead_id": lead["id"],
                        "dealer_id": dealer_id,
                        "source_id": lead["source_id"],
                        "type": lead["type"],
                        "updated_at": now,
                    }
                )
            bind.execute(_facts.insert(), rows)
            written += len(rows)
    return written
