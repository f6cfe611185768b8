"""IMAP intake: poll a dealer's existing mailbox, through the same store as SMTP.

One connection and one thread per mailbox. The mailbox is read by UID, never by the Seen flag
(another client may have read a mail): a ledger per (mailbox, folder, UIDVALIDITY) holds the
last UID stored. Mails are fetched with BODY.PEEK[] (reading does not mark them seen), stored
(committed), then the ledger moves on, and only then are they flagged or moved: a poller
killed anywhere in between fetches the mail again, and the store's content hash makes the
second copy the first. A new UIDVALIDITY (a recreated folder) means a rescan that stores
nothing twice for the same reason. Nothing is ever deleted.

imapclient quirks (DESIGN.md): ``UID n:*`` always returns the highest UID, so UIDs are
filtered; after the server drops a connection ``idle_check`` returns ``[]`` at once forever,
so a fast empty answer is a dead connection; sockets always have a timeout; IDLE is renewed
every ten minutes (RFC 2177 asks for less than 29).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imapclient import IMAPClient
from sqlalchemy import select

from intake.store import Enqueue, Incoming, store_many
from models.clock import Clock, system_clock
from models.db import Database, dialect_insert
from models.tables import Dealer, ImapLedger, ImapStatus

log = logging.getLogger(__name__)

OUR_KEYWORD = "$LmsStored"
IDLE_RENEW_SECONDS = 600
SOCKET_TIMEOUT = 30.0
FETCH_BATCH = 50


@dataclass(frozen=True)
class ImapAccount:
    dealer_id: str
    mailbox: str  # the dealer mailbox the mails count as delivered to
    host: str
    port: int
    security: str  # tls | starttls | none
    user: str
    password: str
    folder: str = "INBOX"
    after: str = "flag"  # flag | move
    move_to: str | None = None
    poll_seconds: float = 60.0

    @property
    def key(self) -> str:
        return f"{self.dealer_id}:{self.user}@{self.host}:{self.port}"


def accounts_from(dealers: list[Dealer], environ: dict[str, str] | None = None) -> list[ImapAccount]:
    env = os.environ if environ is None else environ
    found = []
    for dealer in dealers:
        mailbox = (dealer.config.get("mailboxes") or [dealer.from_address])[0]
        for box in dealer.config.get("imap") or []:
            password = box.get("password")
            if password is None:
                password = env.get(box["password_env"], "")
                if not password:
                    log.error(
                        "IMAP %s@%s: environment variable %s is empty",
                        box["user"],
                        box["host"],
                        box["password_env"],
                    )
            found.append(
                ImapAccount(
                    dealer_id=dealer.id,
                    mailbox=mailbox,
                    host=box["host"],
                    port=int(box["port"]),
                    security=box["security"],
                    user=box["user"],
                    password=password or "",
                    folder=box["folder"],
                    after=box["after"],
                    move_to=box.get("move_to"),
                    poll_seconds=float(box.get("poll_seconds", 60)),
                )
            )
    return found


class DeadConnection(Exception):
    pass


class ImapPoller:
    def __init__(
        self,
        account: ImapAccount,
        db: Database,
        *,
        enqueue: Enqueue | None,
        clock: Clock = system_clock,
        grace_seconds: float = 60.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.account = account
        self.db = db
        self.enqueue = enqueue
        self.clock = clock
        self.grace_seconds = grace_seconds
        self.backoff_max = backoff_max
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"imap-{account.key}", daemon=True)
        self.client: IMAPClient | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=SOCKET_TIMEOUT + 5)

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._session()
                failures = 0
            except Exception as exc:
                failures += 1
                self._status(connected=False, error=f"{type(exc).__name__}: {exc}")
                delay = min(self.backoff_max, 2 ** min(failures, 8)) * random.uniform(0.5, 1.0)
                log.warning("IMAP %s: %s; reconnecting in %.1fs", self.account.key, exc, delay)
                self._stop.wait(delay)
            finally:
                self._close()

    # -- one connection ---------------------------------------------------------------------
    def connect(self) -> IMAPClient:
        account = self.account
        context = ssl.create_default_context()
        client = IMAPClient(
            account.host,
            port=account.port,
            ssl=account.security == "tls",
            ssl_context=context if account.security == "tls" else None,
            timeout=SOCKET_TIMEOUT,
        )
        if account.security == "starttls":
            client.starttls(context)
        client.login(account.user, account.password)
        self.client = client
        return client

    def _close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _session(self) -> None:
        client = self.connect()
        self._status(connected=True)
        idle = b"IDLE" in client.capabilities()
        while not self._stop.is_set():
            self.poll_once(client)
            if idle:
                self._idle(client)
            else:
                self._stop.wait(self.account.poll_seconds)
                client.noop()

    def _idle(self, client: IMAPClient) -> None:
        """Wait in IDLE until the server says something, the renewal is due, or we stop."""
        client.idle()
        started = time.monotonic()
        try:
            while not self._stop.is_set() and time.monotonic() - started < IDLE_RENEW_SECONDS:
                asked = time.monotonic()
                responses = client.idle_check(timeout=1.0)
                if responses:
                    return
                if time.monotonic() - asked < 0.2:
                    raise DeadConnection("idle_check returned at once with nothing: the connection is gone")
        finally:
            client.idle_done()

    # -- the work ---------------------------------------------------------------------------
    def poll_once(self, client: IMAPClient) -> int:
        account = self.account
        selected = client.select_folder(account.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = self._last_uid(uidvalidity)
        # "UID n:*" always returns the highest UID even when it is below n: filter ourselves.
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        taken = 0
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
            # expunged by someone else meanwhile: no BODY[]
            present = [(uid, fetched[uid][b"BODY[]"]) for uid in batch if b"BODY[]" in fetched.get(uid, {})]
            # One commit for the whole fetch batch (group commit); any failure fails them all.
            results = store_many(
                self.db,
                [Incoming(bytes(raw), "", [account.mailbox], "imap") for _, raw in present],
                now=self.clock(),
                grace=timedelta(seconds=self.grace_seconds),
                enqueue=self.enqueue,
            )
            for (uid, _), result in zip(present, results, strict=True):
                if isinstance(result, Exception):
                    raise result
                self._advance(uidvalidity, uid, new=not result.stored[0].duplicate)
                self._after_commit(client, uid)
                taken += 1
        self._status(connected=True, success=True)
        return taken

    def _after_commit(self, client: IMAPClient, uid: int) -> None:
        if self.account.after == "move" and self.account.move_to:
            if not client.folder_exists(self.account.move_to):
                client.create_folder(self.account.move_to)
            client.move([uid], self.account.move_to)
        else:
            client.add_flags([uid], [b"\\Seen", OUR_KEYWORD.encode()])

    def _last_uid(self, uidvalidity: int) -> int:
        with self.db.session() as session:
            value = session.scalar(
                select(ImapLedger.last_uid).where(
                    ImapLedger.account == self.account.key,
                    ImapLedger.folder == self.account.folder,
                    ImapLedger.uidvalidity == uidvalidity,
                )
            )
        return int(value or 0)

    def _advance(self, uidvalidity: int, uid: int, *, new: bool) -> None:
        now = self.clock()
        with self.db.session() as session:
            session.execute(
                dialect_insert(session, ImapLedger)
                .values(
                    account=self.account.key,
                    folder=self.account.folder,
                    uidvalidity=uidvalidity,
                    last_uid=0,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["account", "folder", "uidvalidity"])
            )
            row = session.get(
                ImapLedger, (self.account.key, self.account.folder, uidvalidity), with_for_update=True
            )
            assert row is not None
            row.last_uid = max(row.last_uid, uid)
            row.updated_at = now
            if new:
                status = self._status_row(session, now)
                status.taken += 1

    def _status_row(self, session: Any, now: datetime) -> ImapStatus:
        session.execute(
            dialect_insert(session, ImapStatus)
            .values(
                account=self.account.key, folder=self.account.folder, connected=False, taken=0, updated_at=now
            )
            .on_conflict_do_nothing(index_elements=["account"])
        )
        row = session.get(ImapStatus, self.account.key, with_for_update=True)
        assert row is not None
        return row

    def _status(self, *, connected: bool, success: bool = False, error: str | None = None) -> None:
        now = self.clock()
        try:
            with self.db.session() as session:
                row = self._status_row(session, now)
                row.connected, row.updated_at = connected, now
                if success:
                    row.last_success_at = now
                if error:
                    row.last_error, row.last_error_at = error[:2000], now
        except Exception:
            log.exception("could not record the IMAP status of %s", self.account.key)


def run_pollers(
    accounts: list[ImapAccount], factory: Callable[[ImapAccount], ImapPoller]
) -> list[ImapPoller]:
    pollers = [factory(account) for account in accounts]
    for poller in pollers:
        poller.start()
    return pollers
