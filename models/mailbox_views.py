"""What ``lms ops status`` (and a health check) shows of the mailboxes: each IMAP poller's
state, the mails it had to leave in the mailbox, and each OAuth2 grant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.lead_views import iso
from models.mailbox_tables import ImapSkipped, OAuthToken
from models.tables import ImapStatus

SKIPPED_SHOWN = 20


def imap_view(session: Session) -> list[dict[str, Any]]:
    skipped_counts = dict(
        session.execute(select(ImapSkipped.account, func.count()).group_by(ImapSkipped.account)).all()
    )
    boxes = []
    for row in session.scalars(select(ImapStatus).order_by(ImapStatus.account)):
        skipped = session.scalars(
            select(ImapSkipped)
            .where(ImapSkipped.account == row.account)
            .order_by(ImapSkipped.at.desc(), ImapSkipped.uid.desc())
            .limit(SKIPPED_SHOWN)
        )
        boxes.append(
            {
                "mailbox": row.account,
                "folder": row.folder,
                "connected": row.connected,
                "last_success": iso(row.last_success_at),
                "last_error": row.last_error,
                "last_error_at": iso(row.last_error_at),
                # None while it works; else tls | auth | oauth | config | network | server
                "error_kind": row.error_kind,
                "failing_since": iso(row.failing_since),
                "taken": row.taken,
                "skipped_total": int(skipped_counts.get(row.account, 0)),
                "skipped": [
                    {
                        "folder": s.folder,
                        "uid": s.uid,
                        "uidvalidity": s.uidvalidity,
                        "size": s.size,
                        "from": s.sender,
                        "subject": s.subject,
                        "message_id": s.message_id,
                        "reason": s.reason,
                        "at": iso(s.at),
                    }
                    for s in skipped
                ],
            }
        )
    return boxes


def oauth_view(session: Session) -> list[dict[str, Any]]:
    """The grants, never their tokens."""
    return [
        {
            "dealer": t.dealer_id,
            "user": t.user,
            "provider": t.provider,
            "state": t.state,  # connected | refused (connect again)
            "access_expires_at": iso(t.access_expires_at),
            "connected_at": iso(t.connected_at),
            "refreshed_at": iso(t.refreshed_at),
            "last_error": t.last_error,
            "last_error_at": iso(t.last_error_at),
        }
        for t in session.scalars(select(OAuthToken).order_by(OAuthToken.dealer_id, OAuthToken.user))
    ]
