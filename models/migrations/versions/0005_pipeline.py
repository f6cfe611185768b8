"""The pipeline's second shape: one contact per (dealer, email), enforced.

Concurrent first mails of one customer could create two contacts on PostgreSQL before ingest
locked customer identities. Duplicates already there are merged into the oldest contact (its
leads move over), then the index that was only a lookup aid becomes unique.

Revision ID: 0005_pipeline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_pipeline"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    duplicates = bind.execute(
        sa.text(
            "SELECT dealer_id, email, MIN(id) FROM contacts WHERE email IS NOT NULL "
            "GROUP BY dealer_id, email HAVING COUNT(*) > 1"
        )
    ).all()
    for dealer_id, email, keep in duplicates:
        params = {"dealer": dealer_id, "email": email, "keep": keep}
        others = "SELECT id FROM contacts WHERE dealer_id = :dealer AND email = :email AND id <> :keep"
        bind.execute(sa.text(f"UPDATE leads SET contact_id = :keep WHERE contact_id IN ({others})"), params)
        bind.execute(sa.text(f"DELETE FROM contacts WHERE id IN ({others})"), params)
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_dealer_email")
        batch_op.create_index("uq_contacts_dealer_email", ["dealer_id", "email"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("uq_contacts_dealer_email")
        batch_op.create_index("ix_contacts_dealer_email", ["dealer_id", "email"], unique=False)
