"""The SMTP and LMTP intakes (aiosmtpd 1.4.6): RCPT only for our mailboxes, 250 only after
the commit.

aiosmtpd turns a handler exception into ``500 Error``, a permanent failure that would bounce
a customer's enquiry: every hook here catches everything and answers ``451 4.3.0``, so the
sending server keeps the mail and tries again. Database work runs in threads; mails whose
DATA ends together share one commit (:mod:`intake.group_commit`), and every wait for the
database has a deadline, so a frozen database gives 451 instead of a hanging session.

The protocol classes trim aiosmtpd by subclassing, not forking (a profile put a third of its
time in these): no class introspection per connection (the command and hook tables are built
once per class and handler), RFC 5321 paths checked by one regular expression
(:mod:`intake.smtp_address`) instead of the header parser, and the DATA body read in large
chunks up to each ``.<CRLF>`` instead of line by line with a debug-log call per line.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, AnyStr

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, login_always_fail

from intake.group_commit import GroupCommitter
from intake.priority import IntakeFirst
from intake.smtp_address import parse_path
from intake.store_core import (
    Dialect,
    Incoming,
    Outcome,
    UnknownRecipient,
    announce_new,
    fast_lock_retries,
    is_operational,
    lookup_dealer,
    mailbox_key,
    normalise_address,
    store_batch,
)
from models import metrics
from models.clock import Clock, system_clock
from models.db import Database

log = logging.getLogger(__name__)

TEMPFAIL = "451 4.3.0 Temporary failure, please try again later"
TOO_BIG = "552 5.3.4 Message too big for this system"
UNKNOWN = "550 5.1.1 Recipient address rejected: no such mailbox here"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TOO_MANY_CONNECTIONS = b"421 4.7.0 Too many connections from your address, try again later\r\n"
SESSION_TOO_LONG = b"421 4.4.2 Session too long, closing connection\r\n"
IDLE_TOO_LONG = b"421 4.4.2 Idle for too long, closing connection\r\n"
# Commands that move no mail: a session may give each this often (RFC 5321 has no bound;
# Postfix's smtpd_junk_command_limit is the model), so NOOP cannot keep a session alive.
JUNK_COMMANDS = ("NOOP", "RSET", "VRFY", "EXPN", "HELP", "HELO", "EHLO", "LHLO", "STARTTLS")


@dataclass(frozen=True)
class IntakeLimits:
    max_recipients: int = 100
    max_connections_per_client: int = 50  # 0: no limit
    max_session_seconds: float = 1800.0
    idle_timeout_seconds: float = 300.0
    max_junk_commands: int = 100
    max_commands: int = 10_000
    store_timeout_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Any) -> IntakeLimits:
        return cls(
            max_recipients=settings.smtp_max_recipients,
            max_connections_per_client=settings.smtp_max_connections_per_client,
            max_session_seconds=settings.smtp_max_session_seconds,
            idle_timeout_seconds=settings.smtp_idle_timeout_seconds,
            max_junk_commands=settings.smtp_max_junk_commands,
            max_commands=settings.smtp_max_commands,
            store_timeout_seconds=settings.store_timeout_seconds,
        )


# -- reading DATA ------------------------------------------------------------------------------


_END = b"\r\n.\r\n"


def _pending(tail: bytes) -> int:
    """How much of a possible end-of-data ``<CRLF>.<CRLF>`` the bytes read so far end with."""
    for k in (4, 3, 2, 1):
        if tail.endswith(_END[:k]):
            return k
    return 0


async def read_data(reader: asyncio.StreamReader, limit: int | None) -> bytes | None:
    """The message after ``354``, up to the ``<CRLF>.<CRLF>`` that ends it, dot-unstuffed
    (RFC 5321 4.5.2); ``None`` when it is larger than ``limit`` (read to its end all the same,
    so the session can go on, RFC 5321 4.2.5).

    The body is read with one ``readuntil(<CRLF>.<CRLF>)`` (or a buffer's worth at a time),
    not line by line. Nothing past the end is consumed, so pipelined commands stay in the
    reader: where the bytes read so far end in part of a possible end (the start of DATA
    counts as following a CRLF), exactly the bytes that would complete it are read first. As
    in aiosmtpd, lines end with CRLF only: ``<LF>.<CRLF>`` does not end the message (SMTP
    smuggling gives one message, not two).
    """
    parts: list[bytes] = []
    size = 0
    too_big = False
    tail = b"\r\n"  # the last bytes read; DATA starts at the start of a line
    while True:
        pending = _pending(tail)
        if pending:
            chunk = await reader.readexactly(len(_END) - pending)
            done = chunk == _END[pending:]
        else:
            try:
                chunk = await reader.readuntil(_END)
                done = True
            except asyncio.LimitOverrunError as exc:
                chunk = await reader.read(exc.consumed)
                done = False
        size += len(chunk)
        if not too_big and limit and size - (3 if done else 0) > limit:
            too_big = True
            parts.clear()  # keep nothing of a mail we will refuse
        if not too_big:
            parts.append(chunk)
        if done:
            break
        tail = (tail + chunk)[-4:]
    if too_big:
        return None
    body = b"".join(parts)[:-3]  # the CRLF before the dot ends the last line
    if body.startswith(b"."):
        body = body[1:]
    if b"\r\n." in body:
        body = body.replace(b"\r\n.", b"\r\n")
    return body


# -- the protocol ------------------------------------------------------------------------------

_COMMAND_TABLES: dict[type, tuple[tuple[str, str], ...]] = {}


def _commands_of(cls: type) -> tuple[tuple[str, str], ...]:
    """(COMMAND, method name) of every ``smtp_*`` method of ``cls``, looked up once per class."""
    table = _COMMAND_TABLES.get(cls)
    if table is None:
        table = tuple((name[5:], name) for name in dir(cls) if name.startswith("smtp_"))
        _COMMAND_TABLES[cls] = table
    return table


class IntakeSMTP(SMTP):
    # Lines longer than RFC 5321's 1000 octets are accepted (web form mailers write whole HTML
    # documents on one line, and aiosmtpd would answer a permanent 500); the size stays bounded
    # by data_size_limit. This is also the read buffer of the DATA phase.
    line_length_limit = 1 << 20
    lmtp = False
    listener = "smtp"  # the metrics' label

    def __init__(
        self,
        handler: IntakeHandler,
        *,
        data_size_limit: int | None,
        hostname: str,
        ident: str = "lms intake",
        tls_context: ssl.SSLContext | None = None,
        enable_SMTPUTF8: bool = True,
        **_ignored: Any,
    ) -> None:
        # aiosmtpd's __init__ runs inspect.getmembers() on the protocol and the handler and
        # inspect.signature() on handle_EHLO for every new connection (18% of a profile of
        # our intake). The same attributes, with the tables built once per class.
        limits = handler.limits
        self.__ident__ = ident
        self.loop = asyncio.get_running_loop()
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=self.loop,
        )
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = False
        # Per connection: aiosmtpd keeps this on the class and every EHLO grows it for all.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = False
        self._timeout_duration = limits.idle_timeout_seconds
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = login_always_fail
        self._auth_required = False
        # We offer no AUTH (handle_EHLO removes the keyword); AUTH answers 504.
        self._auth_methods = {}
        self._handle_hooks = handler.hooks
        self._ehlo_hook_ver = "new" if "EHLO" in self._handle_hooks else None
        self._smtp_methods = {command: getattr(self, name) for command, name in _commands_of(type(self))}
        self._enforce_call_limit = True
        self._call_limit_base = dict.fromkeys(JUNK_COMMANDS, limits.max_junk_commands)
        self._call_limit_default = limits.max_commands
        self._session_deadline = 0.0
        self._client: str | None = None
        self._counted = False
        self._refused = False

    # -- connection limits, session length ----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and self.transport is None:  # not the STARTTLS swap
            metrics.smtp_connection(self.listener)
            self._session_deadline = self.loop.time() + self.event_handler.limits.max_session_seconds
            peer = transport.get_extra_info("peername")
            self._client = str(peer[0]) if isinstance(peer, tuple) and peer else None
            if self._client is not None and not self.event_handler.admit(self._client):
                self._refused = True
                transport.write(TOO_MANY_CONNECTIONS)  # type: ignore[attr-defined]
                transport.close()
                return
            self._counted = True
            self.event_handler.sessions += 1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.event_handler.sessions -= 1
            if self._client is not None:
                self.event_handler.release(self._client)
        if self._refused:
            asyncio.StreamReaderProtocol.connection_lost(self, error)
            return
        super().connection_lost(error)

    def _reset_timeout(self, duration: float | None = None) -> None:
        # The idle timer, but never past the end of the session's allowed length.
        remaining = self._session_deadline - self.loop.time()
        super()._reset_timeout(max(0.001, min(duration or self._timeout_duration, remaining)))

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            too_long = self.loop.time() >= self._session_deadline - 0.01
            self.transport.write(SESSION_TOO_LONG if too_long else IDLE_TOO_LONG)  # type: ignore[attr-defined]
        super()._timeout_cb()

    # -- replies -------------------------------------------------------------------------------
    async def push(self, status: AnyStr) -> None:
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("552 Error"):  # aiosmtpd's reply to MAIL FROM with SIZE= too big
            text = TOO_BIG
            metrics.smtp_refused(self.listener, text)
        await super().push(text)

    # -- addresses -----------------------------------------------------------------------------
    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        if not arg:
            return "", ""
        parsed = parse_path(arg)
        if parsed is None:
            return None, None
        return parsed

    # -- DATA ----------------------------------------------------------------------------------
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            body = await read_data(self._reader, self.data_size_limit)
        except asyncio.CancelledError:
            # The connection went away during DATA: nothing is stored.
            self._writer.close()
            raise
        replies = len(self.envelope.rcpt_tos) if self.lmtp else 1
        if body is None:
            self._set_post_data_state()
            metrics.smtp_data(self.listener, None, [TOO_BIG] * replies, 0.0)
            for _ in range(replies):
                await self.push(TOO_BIG)
            return
        self.envelope.content = self.envelope.original_content = body
        started = time.perf_counter()
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        lines = status if isinstance(status, list) else [status]
        metrics.smtp_data(self.listener, len(body), lines, time.perf_counter() - started)
        for line in lines:
            await self.push(line)


class IntakeLMTP(IntakeSMTP, LMTP):
    """LMTP (RFC 2033): LHLO instead of EHLO, and one reply per recipient after DATA."""

    lmtp = True
    listener = "lmtp"


# -- the handlers ------------------------------------------------------------------------------


class IntakeHandler:
    """The SMTP hooks: RCPT for our mailboxes only, DATA stored through the group commit."""

    def __init__(
        self,
        db: Database,
        *,
        enqueue: Any = None,
        clock: Clock = system_clock,
        executor: ThreadPoolExecutor | None = None,
        grace_seconds: float = 60.0,
        limits: IntakeLimits | None = None,
        group_max: int = 64,
        group_window_ms: float = 1.0,
        acceptor: str | None = None,
        mailbox_cache_seconds: float = 10.0,
        sqlite_lock_wait: float = 15.0,
        priority: IntakeFirst | None = None,
    ) -> None:
        self.db = db
        self.dialect = Dialect(db.dialect)
        self.enqueue = enqueue
        self.clock = clock
        self.executor = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="lms-smtp")
        self.grace = timedelta(seconds=grace_seconds)
        self.limits = limits or IntakeLimits()
        self.acceptor = acceptor
        self.sessions = 0  # connected
        self.waiting = 0  # sessions whose mail waits for its commit
        self.connections: dict[str, int] = {}
        self.mailbox_cache_seconds = mailbox_cache_seconds
        self._mailboxes: dict[str, tuple[str, float]] = {}
        self._connection: Any = None
        self.sqlite_lock_wait = sqlite_lock_wait
        self.priority = priority
        self.committer: GroupCommitter[Incoming] = GroupCommitter(
            self._commit,
            max_batch=group_max,
            window=group_window_ms / 1000,
            others=lambda: self.sessions - self.waiting,
            after_commit=(lambda results: announce_new(self.enqueue, results)) if enqueue else None,
        )
        # aiosmtpd's hook table, built once for all connections.
        self.hooks = {name[7:]: getattr(self, name) for name in dir(self) if name.startswith("handle_")}

    # -- connections (called on the event loop only) ------------------------------------------
    def admit(self, client: str) -> bool:
        count = self.connections.get(client, 0)
        limit = self.limits.max_connections_per_client
        if limit and count >= limit:
            log.warning("refusing a connection from %s: %d open already", client, count)
            return False
        self.connections[client] = count + 1
        return True

    def release(self, client: str) -> None:
        count = self.connections.get(client, 0) - 1
        if count > 0:
            self.connections[client] = count
        else:
            self.connections.pop(client, None)

    # -- the database ---------------------------------------------------------------------------
    def _commit(self, items: list[Incoming]) -> Sequence[Outcome | UnknownRecipient]:
        # Runs on the committer's one thread, which keeps its connection: no pool checkout and
        # no pre-ping round trip per commit. A connection that failed is replaced next time.
        if self._connection is None:
            self._connection = self.db.engine.raw_connection()
            fast_lock_retries(self._connection, self.dialect)
        try:
            with self.db.writing():  # this process's other writers take turns with us
                return store_batch(
                    self._connection,
                    self.dialect,
                    items,
                    now=self.clock(),
                    grace=self.grace,
                    lock_wait=self.sqlite_lock_wait,
                )
        except BaseException as exc:
            if is_operational(exc):
                connection, self._connection = self._connection, None
                connection.invalidate()
            raise

    def _lookup(self, address: str) -> str | None:
        with self.db.dbapi() as connection:
            return lookup_dealer(connection, self.dialect, address)

    async def _within_deadline(self, work: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(work, timeout=self.limits.store_timeout_seconds)

    async def dealer_of(self, address: str) -> str | None:
        """The dealer owning ``address``; known mailboxes are remembered for a few seconds (the
        store checks again inside its transaction, so a mailbox removed meanwhile gives 451)."""
        key = mailbox_key(address)
        cached = self._mailboxes.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        loop = asyncio.get_running_loop()
        dealer = await self._within_deadline(loop.run_in_executor(self.executor, self._lookup, address))
        if dealer is not None:
            self._mailboxes[key] = (dealer, now + self.mailbox_cache_seconds)
        return dealer

    async def store(self, envelope: Envelope, *, partial: bool) -> Outcome:
        raw = envelope.original_content or b""
        item = Incoming(
            raw=bytes(raw),
            envelope_from=envelope.mail_from or "",
            recipients=list(envelope.rcpt_tos),
            via=self.via,
            partial=partial,
        )
        self.waiting += 1
        if self.priority is not None:
            self.priority.mail_waiting()
        try:
            result = await self._within_deadline(self.committer.submit(item))
        finally:
            self.waiting -= 1
            if self.priority is not None:
                self.priority.mail_done()
        if isinstance(result, UnknownRecipient):
            raise result
        return result

    via = "smtp"

    # -- hooks -----------------------------------------------------------------------------------
    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd would answer "500 Error: (…)": permanent, and it leaks internals.
        log.error("SMTP session error: %r", error, exc_info=error)
        return TEMPFAIL

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        # aiosmtpd handles pipelined commands in order but does not say so (RFC 2920); we offer
        # no AUTH (it would list mechanisms that always fail).
        lines = [line for line in responses if not line.startswith("250-AUTH")]
        return [*lines[:-1], "250-PIPELINING", lines[-1]] if len(lines) > 1 else lines

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = await self._recipient(envelope, address)
        if not reply.startswith("250"):
            metrics.smtp_refused(self.via, reply)
        return reply

    async def _recipient(self, envelope: Envelope, address: str) -> str:
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            return TOO_MANY_RECIPIENTS
        try:
            dealer = await self.dealer_of(address)
        except Exception:
            log.exception("RCPT lookup for %s failed", address)
            return TEMPFAIL
        if dealer is None:
            return UNKNOWN
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            outcome = await self.store(envelope, partial=False)
        except UnknownRecipient:
            # The mailbox went away between RCPT and DATA (configuration change): try later.
            return TEMPFAIL
        except TimeoutError:
            log.error(
                "no commit within %.0fs for a mail from %s: 451",
                self.limits.store_timeout_seconds,
                envelope.mail_from,
            )
            return TEMPFAIL
        except Exception:
            log.exception("storing a message from %s failed", envelope.mail_from)
            return TEMPFAIL
        ids = ",".join(str(s.id) for s in outcome.stored)
        by = f" by acceptor {self.acceptor}" if self.acceptor else ""
        return f"250 2.0.0 OK stored as {ids}{by}"


class LmtpHandler(IntakeHandler):
    """LMTP: after DATA one reply per accepted recipient, in RCPT order (RFC 2033 4.2)."""

    via = "lmtp"

    async def handle_DATA(  # type: ignore[override]
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> list[str]:
        recipients = list(envelope.rcpt_tos)
        try:
            outcome = await self.store(envelope, partial=True)
        except TimeoutError:
            log.error("no commit within %.0fs for an LMTP mail: 451", self.limits.store_timeout_seconds)
            return [TEMPFAIL] * len(recipients)
        except Exception:
            log.exception("storing an LMTP message from %s failed", envelope.mail_from)
            return [TEMPFAIL] * len(recipients)
        replies = []
        for address in recipients:
            stored = outcome.for_recipient(address)
            if stored is None:
                replies.append(UNKNOWN)
            else:
                replies.append(f"250 2.0.0 <{normalise_address(address)}> OK stored as {stored.id}")
        return replies


# -- servers -----------------------------------------------------------------------------------


def tls_context_from(cert: str, key: str) -> ssl.SSLContext:
    """Server side of STARTTLS (RFC 3207); clients are not asked for certificates."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class IntakeController(Controller):
    def __init__(
        self, handler: IntakeHandler, *, protocol: type[IntakeSMTP], reuse_port: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self.protocol = protocol
        self.reuse_port = reuse_port

    def factory(self) -> SMTP:
        return self.protocol(self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(
            self._factory_invoker,
            host=self.hostname,
            port=self.port,
            ssl=self.ssl_context,
            reuse_port=self.reuse_port or None,
            backlog=511,
        )


class IntakeUnixController(UnixSocketController):
    def __init__(self, handler: IntakeHandler, *, protocol: type[IntakeSMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.protocol = protocol

    def factory(self) -> SMTP:
        return self.protocol(self.handler, **self.SMTP_kwargs)

    def start(self) -> None:
        if os.path.exists(self.unix_socket):  # left by a process that did not stop cleanly
            os.unlink(self.unix_socket)
        super().start()

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert)
        if os.path.exists(self.unix_socket):
            os.unlink(self.unix_socket)


_FQDN: list[str] = []


def server_name() -> str:
    """Our name in the greeting; aiosmtpd asks the resolver for it on every connection."""
    if not _FQDN:
        _FQDN.append(socket.getfqdn())
    return _FQDN[0]


def make_smtp_controller(
    handler: IntakeHandler,
    *,
    host: str,
    port: int,
    max_bytes: int,
    tls_context: ssl.SSLContext | None = None,
    reuse_port: bool = False,
) -> IntakeController:
    return IntakeController(
        handler,
        protocol=IntakeSMTP,
        reuse_port=reuse_port,
        hostname=host,
        port=port,
        data_size_limit=max_bytes,
        server_hostname=server_name(),
        tls_context=tls_context,
        ident="lms intake",
    )


def make_lmtp_controller(
    handler: IntakeHandler, *, listen: str, max_bytes: int
) -> IntakeController | IntakeUnixController:
    """``listen``: a Unix socket path (contains a ``/``) or a loopback ``HOST:PORT``."""
    options: dict[str, Any] = {
        "protocol": IntakeLMTP,
        "data_size_limit": max_bytes,
        "server_hostname": server_name(),
        "ident": "lms LMTP intake",
    }
    if "/" in listen:
        return IntakeUnixController(handler, unix_socket=listen, **options)
    from models.settings import split_host_port

    host, port = split_host_port(listen)
    if host not in ("127.0.0.1", "::1", "localhost"):
        # LMTP has no authentication and the mail server in front has done the checks.
        log.warning("LMTP listens on %s, not on loopback: only the mail server should reach it", host)
    return IntakeController(handler, hostname=host, port=port, **options)
