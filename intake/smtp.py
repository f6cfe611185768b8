"""The SMTP intake (aiosmtpd 1.4.6): RCPT only for our mailboxes, 250 only after the commit.

aiosmtpd turns a handler exception into ``500 Error``, a permanent failure that would bounce
a customer's enquiry: every hook here catches everything and answers ``451 4.3.0``, so the
sending server keeps the mail and tries again. Database work runs in a thread pool so one
slow commit does not stall every other session on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from intake.store import UnknownRecipient, dealer_for_address, store_message
from models.clock import Clock, system_clock
from models.db import Database

log = logging.getLogger(__name__)

TEMPFAIL = "451 4.3.0 Temporary failure, please try again later"


class IntakeSMTP(SMTP):
    # RFC 5321 allows 1000 octets a line; real mail (long HTML lines from web forms) breaks
    # that, and aiosmtpd would answer a permanent 500. Accept long lines; size stays bounded
    # by data_size_limit.
    line_length_limit = 1 << 20

    async def push(self, status: AnyStr) -> None:
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("552 Error"):
            text = "552 5.3.4 Message too big for this system"
        await super().push(text)


class IntakeHandler:
    def __init__(
        self,
        db: Database,
        *,
        enqueue: Any = None,
        clock: Clock = system_clock,
        executor: ThreadPoolExecutor | None = None,
        grace_seconds: float = 60.0,
    ) -> None:
        self.db = db
        self.enqueue = enqueue
        self.clock = clock
        self.executor = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="lms-smtp")
        self.grace_seconds = grace_seconds

    async def _in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            dealer = await self._in_thread(dealer_for_address, self.db, address)
        except Exception:
            log.exception("RCPT lookup for %s failed", address)
            return TEMPFAIL
        if dealer is None:
            return "550 5.1.1 Recipient address rejected: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        from datetime import timedelta

        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            stored = await self._in_thread(
                store_message,
                self.db,
                bytes(raw or b""),
                envelope_from=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                via="smtp",
                now=self.clock(),
                enqueue=self.enqueue,
                grace=timedelta(seconds=self.grace_seconds),
            )
        except UnknownRecipient:
            # The mailbox went away between RCPT and DATA (configuration change): try later.
            return TEMPFAIL
        except Exception:
            log.exception("storing a message from %s failed", envelope.mail_from)
            return TEMPFAIL
        ids = ",".join(str(s.id) for s in stored)
        return f"250 2.0.0 OK stored as {ids}"


class IntakeController(Controller):
    def factory(self) -> SMTP:
        return IntakeSMTP(self.handler, **self.SMTP_kwargs)


def make_smtp_controller(handler: IntakeHandler, *, host: str, port: int, max_bytes: int) -> IntakeController:
    return IntakeController(
        handler,
        hostname=host,
        port=port,
        data_size_limit=max_bytes,
        enable_SMTPUTF8=True,
        decode_data=False,
        ident="lms intake",
    )
