"""Leads that arrive, are answered and completed at moments a test chooses (issue 16's tests):
our stack on a controllable clock, the lead actions called as the pane and the CLI call them."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from intake.store import store_message
from models.report_tables import LeadFact
from models.tables import Lead
from tests.support.clock import FakeClock
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.stack import Stack
from workers import lead_actions as actions

BERLIN = ZoneInfo("Europe/Berlin")
REPORTS_DEALER = Path(__file__).resolve().parents[1] / "fixtures" / "dealer_reports.toml"
_serial = itertools.count(1)


def berlin(text: str) -> datetime:
    """A wall-clock time in Berlin (``fold=1`` for the second 02:30 of a fall-back night: "…+fold")."""
    fold = 1 if text.endswith("+fold") else 0
    return (
        datetime.fromisoformat(text.removesuffix("+fold")).replace(tzinfo=BERLIN, fold=fold).astimezone(UTC)
    )


class SpeedStack:
    """Our stack on a fake clock, no SMTP and no worker threads: everything runs when called."""

    def __init__(
        self,
        database_url: str,
        *,
        outbox: Path,
        config: Path = REPORTS_DEALER,
        start: str = "2026-11-02T08:00",
    ) -> None:
        self.clock = FakeClock(berlin(start))
        self.stack = Stack(
            database_url,
            relay_url=f"maildir://{outbox}",
            clock=self.clock,
            config=config,
            worker_threads=None,
            smtp=False,
        )
        self.db = self.stack.db
        self.runtime = self.stack.runtime

    def at(self, when: str | datetime) -> datetime:
        moment = berlin(when) if isinstance(when, str) else when
        self.clock.advance(moment - self.clock())
        return moment

    def arrive(
        self, when: str | datetime, *, sender: str | None = None, subject: str = "Anfrage Golf"
    ) -> int:
        """A customer's mail stored at ``when`` and made a lead by ingest at once."""
        now = self.at(when)
        n = next(_serial)
        [stored] = store_message(
            self.db,
            enquiry(sender=sender or f"Kunde {n} <kunde{n}@example.org>", subject=subject),
            envelope_from="kunde@example.org",
            recipients=[DEMO_MAILBOX],
            via="smtp",
            now=now,
        )
        self.runtime.ingest(stored.id)
        with self.db.read() as session:
            return int(session.scalars(select(Lead.id).where(Lead.inbound_id == stored.id)).one())

    def act(
        self, lead_id: int, when: str | datetime, action: Callable[[Any, Lead, datetime], object]
    ) -> None:
        now = self.at(when)
        with self.db.session() as session:
            action(session, actions.locked_lead(session, lead_id), now)

    def reply(self, lead_id: int, when: str | datetime, *, as_user: str | None = None) -> None:
        def act(session: Any, lead: Lead, now: datetime) -> None:
            by = actions.acting_user(session, lead, as_user)
            actions.reply(session, lead, "Guten Tag, gern!", by=by, now=now)

        self.act(lead_id, when, act)

    def complete(self, lead_id: int, when: str | datetime, reason: str) -> None:
        self.act(lead_id, when, lambda s, lead, now: actions.complete(s, lead, reason, by="test", now=now))

    def reopen(self, lead_id: int, when: str | datetime) -> None:
        self.act(lead_id, when, lambda s, lead, now: actions.reopen(s, lead, by="test", now=now))

    def assign(self, lead_id: int, when: str | datetime, user: str) -> None:
        self.act(
            lead_id, when, lambda s, lead, now: actions.assign(s, lead, user, by="test", reason="", now=now)
        )

    def escalate(self, when: str | datetime) -> None:
        self.runtime.escalate_once(self.at(when))

    def facts(self, lead_id: int) -> LeadFact | None:
        with self.db.read() as session:
            return session.get(LeadFact, lead_id)

    def close(self) -> None:
        self.stack.close()
