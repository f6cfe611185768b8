"""The one place the pane decides what a signed-in person may see. Every page and API endpoint
takes its rows through these functions; anything outside the person's scope (another team's
lead, another dealer's anything, an id that does not exist, an id that is no id) is the same
404, so ids tell nothing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request

from models.lead_scope import LeadScope
from models.report_views import ReportScope
from models.tables import InboundMessage, Lead, User

MAX_ID = 2**63 - 1  # BIGINT: a longer number is no id of ours, and PostgreSQL would refuse it


def scope_of(request: Request) -> LeadScope:
    return request.state.auth.scope


def user_of(request: Request) -> User:
    return request.state.auth.user


def parse_id(raw: object) -> int:
    text = str(raw)
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_ID or int(text) == 0:
        raise HTTPException(404)
    return int(text)


def visible_lead(session: Session, scope: LeadScope, raw_id: object, *, lock: bool = False) -> Lead:
    query = select(Lead).where(Lead.id == parse_id(raw_id), scope.clause())
    if lock:
        query = query.with_for_update(of=Lead)
    lead = session.scalars(query).unique().one_or_none()
    if lead is None:
        raise HTTPException(404)
    return lead


def visible_unassigned(session: Session, scope: LeadScope, raw_id: object) -> InboundMessage:
    if not scope.handles_unassigned:
        raise HTTPException(404)
    row = session.get(InboundMessage, parse_id(raw_id))
    if row is None or row.dealer_id != scope.dealer_id or row.state != "unrecognised":
        raise HTTPException(404)
    return row


def require_admin(scope: LeadScope) -> None:
    if not scope.is_admin:
        raise HTTPException(404)


def require_unassigned(scope: LeadScope) -> None:
    if not scope.handles_unassigned:
        raise HTTPException(404)


def report_scope(scope: LeadScope) -> ReportScope:
    """Whose figures the reports show: an admin the dealer's, a supervisor their team's and the
    pool's (as their leads list); a seller has no reports page."""
    if scope.is_admin:
        return ReportScope(scope.dealer_id)
    if scope.role != "supervisor":
        raise HTTPException(404)
    return ReportScope(scope.dealer_id, scope.editors)


def dealer_users(session: Session, scope: LeadScope) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.dealer_id == scope.dealer_id, User.active).order_by(User.name)
        )
    )
