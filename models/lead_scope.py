"""Who may see which leads: the rule, as one value every query of the web pane and its API takes.

A seller sees the leads they edit and the dealer's pool (no editor); a supervisor the leads of
their team (the sellers whose supervisor they are, and their own) and the pool; an admin the
whole dealer. Nobody sees another dealer's data.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from models.tables import Lead, User


@dataclass(frozen=True)
class LeadScope:
    dealer_id: str
    user_id: int
    username: str
    role: str  # seller | supervisor | admin
    # Editors whose leads are visible besides the pool; ignored for an admin (all of them).
    editors: frozenset[int]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def handles_unassigned(self) -> bool:
        """The queue of unrecognised mails holds anyone's data: supervisors and admins only."""
        return self.role in ("supervisor", "admin")

    def clause(self) -> ColumnElement[bool]:
        """The WHERE condition on ``leads`` for everything this person may see."""
        if self.is_admin:
            return Lead.dealer_id == self.dealer_id
        return and_(
            Lead.dealer_id == self.dealer_id,
            or_(Lead.editor_id.is_(None), Lead.editor_id.in_(sorted(self.editors))),
        )


def scope_for(session: Session, user: User) -> LeadScope:
    editors = {user.id}
    if user.role == "supervisor":
        editors |= set(
            session.scalars(
                select(User.id).where(User.dealer_id == user.dealer_id, User.supervisor_id == user.id)
            )
        )
    return LeadScope(
        dealer_id=user.dealer_id,
        user_id=user.id,
        username=user.username,
        role=user.role,
        editors=frozenset(editors),
    )
