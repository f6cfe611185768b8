"""Completion reasons as an admin edits them on the web page.

System reasons (``dealer_id`` NULL) exist for every dealer; a dealer's row of the same code
renames or hides one; a dealer's row of a new code is their own reason. Rows made here are
marked ``origin = "web"``: applying the dealer file leaves them alone unless the file names the
same code, which then takes the row over (the file wins where both speak).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import CompletionReason

CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class ReasonError(Exception):
    """The change cannot be made; the message says why."""


@dataclass(frozen=True)
class ReasonRow:
    code: str
    label: str  # what people see (the dealer's label, else the system's)
    system_label: str | None  # None: the dealer's own reason
    hidden: bool
    origin: str  # system | web | file
    used: bool = False


def reason_rows(session: Session, dealer_id: str) -> list[ReasonRow]:
    system = {
        r.code: r
        for r in session.scalars(select(CompletionReason).where(CompletionReason.dealer_id.is_(None)))
    }
    own = {
        r.code: r
        for r in session.scalars(select(CompletionReason).where(CompletionReason.dealer_id == dealer_id))
    }
    rows: list[ReasonRow] = []
    for code in sorted(set(system) | set(own)):
        base, mine = system.get(code), own.get(code)
        shown = mine or base
        assert shown is not None
        rows.append(
            ReasonRow(
                code=code,
                label=shown.label,
                system_label=base.label if base else None,
                hidden=shown.hidden,
                origin=mine.origin if mine else "system",
            )
        )
    return rows


def _own_row(session: Session, dealer_id: str, code: str) -> CompletionReason:
    row = session.scalar(
        select(CompletionReason).where(CompletionReason.dealer_id == dealer_id, CompletionReason.code == code)
    )
    if row is not None:
        return row
    base = session.scalar(
        select(CompletionReason).where(CompletionReason.dealer_id.is_(None), CompletionReason.code == code)
    )
    if base is None:
        raise ReasonError(f"no completion reason {code!r}")
    row = CompletionReason(dealer_id=dealer_id, code=code, label=base.label, hidden=base.hidden, origin="web")
    session.add(row)
    return row


def rename(session: Session, dealer_id: str, code: str, label: str) -> None:
    label = " ".join(label.split())
    if not label or len(label) > 200:
        raise ReasonError("a label needs 1 to 200 characters")
    _own_row(session, dealer_id, code).label = label


def set_hidden(session: Session, dealer_id: str, code: str, hidden: bool) -> None:
    """Hidden: not offered when completing; leads completed with it still show it."""
    _own_row(session, dealer_id, code).hidden = hidden


def add(session: Session, dealer_id: str, code: str, label: str) -> None:
    if not CODE.match(code):
        raise ReasonError("a code is a lower-case slug (letters, digits, - _ .), e.g. financing_refused")
    exists = session.scalar(
        select(CompletionReason.id).where(
            CompletionReason.code == code,
            (CompletionReason.dealer_id == dealer_id) | CompletionReason.dealer_id.is_(None),
        )
    )
    if exists is not None:
        raise ReasonError(f"the reason {code!r} exists already")
    label = " ".join(label.split())
    if not label or len(label) > 200:
        raise ReasonError("a label needs 1 to 200 characters")
    session.add(CompletionReason(dealer_id=dealer_id, code=code, label=label, hidden=False, origin="web"))
