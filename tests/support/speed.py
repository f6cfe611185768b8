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
from models.tables import InboundMessage, Lead
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


def dealer_file(target: Path, extra: str = "", base: Path = REPORTS_DEALER) -> Path:
    """The reports dealer with more of its file (webhooks, say) appended to its last table."""
    target.write_text(base.read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    return target


class SpeedStack:
    """Our stack on a fake clock, no SMTP; without worker threads everything runs when called."""

    def __init__(
        self,
        database_url: str,
        *,
        outbox: Path,
        config: Path = REPORTS_DEALER,
        start: str = "2026-11-02T08:00",
        worker_threads: int | None = None,
        relay_url: str | None = None,
        **settings: Any,
    ) -> None:
        self.clock = FakeClock(berlin(start))
        self.stack = Stack(
            database_url,
            relay_url=relay_url or f"maildir://{outbox}",
            clock=self.clock,
            config=config,
            worker_threads=worker_threads,
            smtp=False,
            **settings,
        )
        self.db = self.stack.db
        self.runtime = self.stack.runtime

    def at(self, when: str | datetime) -> datetime:
        moment = berlin(when) if isinstance(when, str) else when
        self.clock.advance(moment - self.clock())
        return moment

    def arrive(
        self,
        when: str | datetime,
        *,
        sender: str | None = None,
        subject: str = "Anfrage Golf",
        body: str = "Guten Tag, ist der Golf noch zu haben?",
    ) -> int:
        """A customer's mail stored at ``when`` and made a lead by ingest at once."""
        now = self.at(when)
        n = next(_serial)
        [stored] = store_message(
            self.db,
            enquiry(sender=sender or f"Kunde {n} <kunde{n}@example.org>", subject=subject, body=body),
            envelope_from="kunde@example.org",
            recipients=[DEMO_MAILBOX],
            via="smtp",
            now=now,
        )
        self.runtime.ingest(stored.id)
        with self.db.read() as session:
            lead_id = session.scalars(select(Lead.id).where(Lead.inbound_id == stored.id)).first()
            if lead_id is None:
                row = session.get(InboundMessage, stored.id)
                raise AssertionError(
                    f"no lead made: {row.state if row else None} {row.reason if row else ''}"
                )
            return int(lead_id)

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
