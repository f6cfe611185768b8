"""Apply a validated dealer configuration to the database in one transaction.

A file manages the dealers it names; dealers it does not name stay as they are. Users
dropped from a dealer are deactivated, never deleted, because leads refer to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.dealer_config import ConfigError, DealerConfig, FileConfig
from models.tables import CompletionReason, Dealer, Mailbox, Source, User


def apply_config(session: Session, config: FileConfig, *, now: datetime) -> list[str]:
    """Write ``config`` into the session's transaction; returns the dealer ids applied."""
    for index, dealer in enumerate(config.dealers):
        _apply_dealer(session, index, dealer, now)
    return [d.id for d in config.dealers]


def _apply_dealer(session: Session, index: int, cfg: DealerConfig, now: datetime) -> None:
    for m_index, address in enumerate(cfg.mailboxes):
        owner = session.scalar(select(Mailbox.dealer_id).where(Mailbox.address == address))
        if owner is not None and owner != cfg.id:
            raise ConfigError(
                f"dealers[{index}].mailboxes[{m_index}]",
                f"{address} already belongs to dealer {owner!r}",
            )

    dealer = session.get(Dealer, cfg.id)
    if dealer is None:
        dealer = Dealer(id=cfg.id)
        session.add(dealer)
    dealer.name = cfg.name
    dealer.from_name = cfg.sender_name
    dealer.from_address = cfg.sender_address
    dealer.timezone = cfg.timezone
    dealer.language = cfg.language
    dealer.country = cfg.country
    dealer.forward_to = list(cfg.forward_to)
    dealer.config = cfg.model_dump(mode="json", by_alias=True)
    dealer.updated_at = now
    session.flush()

    session.execute(delete(Mailbox).where(Mailbox.dealer_id == cfg.id))
    session.add_all(Mailbox(address=a, dealer_id=cfg.id) for a in cfg.mailboxes)

    _apply_users(session, cfg)
    _replace_named(
        session,
        Source,
        cfg.id,
        {s.name: {"rules": {"from": s.from_, "subject": s.subject}} for s in cfg.sources},
        key="name",
    )
    _replace_named(
        session,
        CompletionReason,
        cfg.id,
        {r.code: {"label": r.label, "hidden": r.hidden, "origin": "file"} for r in cfg.completion_reasons},
        key="code",
    )
    session.flush()


def _apply_users(session: Session, cfg: DealerConfig) -> None:
    existing = {u.username: u for u in session.scalars(select(User).where(User.dealer_id == cfg.id))}
    for user in existing.values():
        user.active = False
    for ucfg in cfg.users:
        found = existing.get(ucfg.id)
        if found is None:
            user = User(dealer_id=cfg.id, username=ucfg.id)
            session.add(user)
            existing[ucfg.id] = user
        else:
            user = found
        user.name = ucfg.name
        user.email = ucfg.email
        user.role = ucfg.role
        user.weight = ucfg.weight
        user.max_open = ucfg.max_open
        user.absences = [{"from": a.from_.isoformat(), "to": a.to.isoformat()} for a in ucfg.absent]
        user.active = True
    session.flush()
    for ucfg in cfg.users:
        supervisor = existing[ucfg.supervisor] if ucfg.supervisor else None
        existing[ucfg.id].supervisor_id = supervisor.id if supervisor else None


def _replace_named(
    session: Session, model: Any, dealer_id: str, wanted: dict[str, dict[str, Any]], *, key: str
) -> None:
    """Upsert a dealer's own rows of ``model`` by ``key``; rows no longer wanted are removed
    only when nothing refers to them, otherwise hidden (for reasons) or left unused."""
    rows = {getattr(r, key): r for r in session.scalars(select(model).where(model.dealer_id == dealer_id))}
    for name, values in wanted.items():
        row = rows.get(name)
        if row is None:
            row = model(dealer_id=dealer_id, **{key: name})
            session.add(row)
        for attr, value in values.items():
            setattr(row, attr, value)
    for name, row in rows.items():
        # Rows made on the admin page (origin "web") are the page's, unless the file names them.
        if name not in wanted and hasattr(row, "hidden") and getattr(row, "origin", "file") == "file":
            row.hidden = True
