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
every ten minutes (RFC 2177 asks for less than 29). A server may announce a mail that arrived
during our own commands along with their answers: it is taken at once, not left for IDLE.
Dovecot does not announce a mail delivered in the milliseconds between our SEARCH and our
IDLE until the next change or the renewal: such a mail is late (ten minutes at most), never
lost.

TLS is verified (certificate chain and host name) against ``ca_file`` or the system trust
store; STARTTLS that is not offered or refused ends the session before any credential is sent
(a proxy stripping STARTTLS must not get us to talk in clear). With ``auth = "xoauth2"`` the
access token comes from the token store (intake/oauth_tokens.py); the session ends before the
token is due for refresh and the next one logs in with a fresh token.

A mail larger than LMS_SMTP_MAX_BYTES is not fetched: its headers are, the ledger moves past
it, a row in ``imap_skipped`` shows it in ``lms ops status``, and it stays in the mailbox
unread, marked ``\\Flagged`` (and ``$LmsTooLarge`` where the server takes keywords).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError
from sqlalchemy import select

from intake.oauth import OAuthError
from intake.oauth_tokens import AccessTokens
from intake.store import Enqueue, Incoming, store_many
from models import metrics
from models.clock import Clock, system_clock
from models.db import Database, dialect_insert
from models.log_context import bind_thread
from models.mailbox_tables import ImapSkipped
from models.policy import policy_for
from models.tables import Dealer, ImapLedger, ImapStatus
from models.tls import client_tls_context

log = logging.getLogger(__name__)

OUR_KEYWORD = "$LmsStored"
TOO_LARGE_KEYWORD = "$LmsTooLarge"
IDLE_RENEW_SECONDS = 600
SOCKET_TIMEOUT = 30.0
FETCH_BATCH = 50
FETCH_BATCH_BYTES = 32 * 1024 * 1024  # bodies fetched in one command, at most (one mail always)


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
    ca_file: str | None = None
    auth: str = "password"  # password | xoauth2
    oauth: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:  # the same as models.policy.DealerPolicy.imap_key
        return f"{self.dealer_id}:{self.user}@{self.host}:{self.port}"


def accounts_from(dealers: list[Dealer], environ: dict[str, str] | None = None) -> list[ImapAccount]:
    env = os.environ if environ is None else environ
    found = []
    for dealer in dealers:
        policy = policy_for(dealer)
        mailbox = policy.mailboxes[0]
        for box in policy.imap:
            password = box.password
            if box.auth == "password" and password is None and box.password_env:
                password = env.get(box.password_env, "")
                if not password:
                    log.error(
                        "IMAP %s@%s: environment variable %s is empty", box.user, box.host, box.password_env
                    )
            found.append(
                ImapAccount(
                    dealer_id=dealer.id,
                    mailbox=mailbox,
                    host=box.host,
                    port=box.port,
                    security=box.security,
                    user=box.user,
                    password=password or "",
                    folder=box.folder,
                    after=box.after,
                    move_to=box.move_to,
                    poll_seconds=box.poll_seconds,
                    ca_file=box.ca_file,
                    auth=box.auth,
                    oauth=box.oauth.model_dump(mode="json") if box.oauth else None,
                )
            )
    return found


class DeadConnection(Exception):
    pass


class MailboxError(Exception):
    """A failure with a kind a health check can act on: tls, auth, oauth, config, network,
    server."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def classify(exc: BaseException, account: ImapAccount) -> MailboxError:
    """Turn what the libraries raise into one sentence a dealer's admin can act on."""
    where = f"{account.host}:{account.port}"
    if isinstance(exc, MailboxError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        hint = "" if account.ca_file else "; for a private CA set ca_file"
        return MailboxError("tls", f"TLS: the certificate of {where} was refused ({reason}){hint}")
    if isinstance(exc, ssl.SSLError):
        return MailboxError("tls", f"TLS with {where} failed: {exc.reason or exc}")
    if isinstance(exc, LoginError):
        return MailboxError("auth", f"{where} refused the login of {account.user}: {exc}")
    if isinstance(exc, OAuthError):
        return MailboxError("config" if exc.error == "configuration" else "oauth", f"OAuth2: {exc}")
    if isinstance(exc, DeadConnection | socket.timeout | TimeoutError):
        return MailboxError("network", f"{where}: {exc or 'timed out'}")
    if isinstance(exc, OSError):
        return MailboxError("network", f"cannot reach {where}: {exc}")
    if isinstance(exc, IMAPClientError):
        return MailboxError("server", f"{where}: {exc}")
    return MailboxError("server", f"{where}: {type(exc).__name__}: {exc}")


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
        max_bytes: int | None = None,
        secret_key: str | None = None,
        tokens: AccessTokens | None = None,
    ) -> None:
        self.account = account
        self.db = db
        self.enqueue = enqueue
        self.clock = clock
        self.grace_seconds = grace_seconds
        self.backoff_max = backoff_max
        self.max_bytes = max_bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"imap-{account.key}", daemon=True)
        self.client: IMAPClient | None = None
        self.tokens = tokens
        if tokens is None and account.auth == "xoauth2":
            self.tokens = AccessTokens(
                db,
                dealer_id=account.dealer_id,
                user=account.user,
                oauth=account.oauth or {},
                secret_key=secret_key,
                clock=clock,
            )
        self.idling = threading.Event()  # in IDLE now (for a health view, and tests)
        self._session_ends_at: datetime | None = None  # the access token is due for refresh
        self._keywords = True  # the selected folder takes our own keywords (PERMANENTFLAGS \*)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=SOCKET_TIMEOUT + 5)

    def run(self) -> None:
        bind_thread(dealer=self.account.dealer_id)  # every line of this poller names its dealer
        failures = 0
        while not self._stop.is_set():
            try:
                self._session()
                failures = 0
            except Exception as exc:
                failures += 1
                error = classify(exc, self.account)
                self._status(connected=False, error=str(error), kind=error.kind)
                metrics.imap_error(self.account.dealer_id, self.account.user, error.kind)
                delay = min(self.backoff_max, 2 ** min(failures, 8)) * random.uniform(0.5, 1.0)
                log.warning("IMAP %s: %s; reconnecting in %.1fs", self.account.key, error, delay)
                self._stop.wait(delay)
            finally:
                self._close()

    # -- one connection ---------------------------------------------------------------------
    def connect(self) -> IMAPClient:
        account = self.account
        # The token first: a refused grant opens no connection, a refresh holds none open.
        token = self.tokens.get() if self.tokens is not None and account.auth == "xoauth2" else None
        context = client_tls_context(account.ca_file) if account.security != "none" else None
        client = IMAPClient(
            account.host,
            port=account.port,
            ssl=account.security == "tls",
            ssl_context=context if account.security == "tls" else None,
            timeout=SOCKET_TIMEOUT,
        )
        self.client = client  # closed by _close() whatever happens below
        if account.security == "starttls":
            self._starttls(client, context)
        if token is not None:
            self._oauth2_login(client, token)
        else:
            client.login(account.user, account.password)
        return client

    def _starttls(self, client: IMAPClient, context: ssl.SSLContext | None) -> None:
        where = f"{self.account.host}:{self.account.port}"
        try:
            client.starttls(context)
        except CapabilityError:
            raise MailboxError(
                "tls",
                f"{where} did not offer STARTTLS (removed by something in between?); "
                "refusing to log in without TLS",
            ) from None
        except ssl.SSLError:
            raise
        except IMAPClientError as exc:
            raise MailboxError(
                "tls", f"{where} refused STARTTLS ({exc}); refusing to log in without TLS"
            ) from None

    def _oauth2_login(self, client: IMAPClient, token: str) -> None:
        """Log in with the stored token; if the server refuses it, refresh once and try again
        (a token revoked early, or clocks that disagree), then give up until the backoff."""
        assert self.tokens is not None
        try:
            client.oauth2_login(self.account.user, token)
        except LoginError:
            log.info("IMAP %s: access token refused, refreshing once", self.account.key)
            token = self.tokens.get(failed=token)
            client.oauth2_login(self.account.user, token)
        self._session_ends_at = self.tokens.refresh_due_at

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
        again = False
        while not self._stop.is_set():
            self.poll_once(client)
            if self._token_due():
                return  # log out cleanly; the next session logs in with a refreshed token
            # A mail announced during the poll is taken now, not at the next event; once in a
            # row only, in case a server repeats EXISTS with every answer.
            again = not again and self._announced_meanwhile(client)
            if again:
                continue
            if idle:
                self._idle(client)
            else:
                self._stop.wait(min(self.account.poll_seconds, self._seconds_left()))
                client.noop()

    @staticmethod
    def _unsolicited(client: IMAPClient) -> dict[str, Any]:
        # imapclient keeps what the server sent unasked (RFC 3501 §7) in imaplib's store and
        # has no public accessor for it.
        imap = getattr(client, "_imap", None)
        responses = getattr(imap, "untagged_responses", None)
        return responses if isinstance(responses, dict) else {}

    def _announced_meanwhile(self, client: IMAPClient) -> bool:
        """Did the server announce new mail (``* n EXISTS``) along with our own commands after
        SELECT? It then counts the news as told and IDLE would not repeat it: without this
        check a mail arriving between SEARCH and IDLE waited for the next mail or renewal."""
        return bool(self._unsolicited(client).pop("EXISTS", None))

    def _seconds_left(self) -> float:
        """Until the access token of this session is due for refresh (forever with passwords)."""
        if self._session_ends_at is None:
            return float("inf")
        return max(0.0, (self._session_ends_at - self.clock()).total_seconds())

    def _token_due(self) -> bool:
        return self._seconds_left() <= 0

    def _idle(self, client: IMAPClient) -> None:
        """Wait in IDLE until the server says something, the renewal is due, the access token
        is due for refresh, or we stop."""
        client.idle()
        self.idling.set()
        started = time.monotonic()
        limit = min(IDLE_RENEW_SECONDS, self._seconds_left())
        try:
            while not self._stop.is_set() and time.monotonic() - started < limit:
                asked = time.monotonic()
                responses = client.idle_check(timeout=1.0)
                if responses:
                    return
                if time.monotonic() - asked < 0.2:
                    raise DeadConnection("idle_check returned at once with nothing: the connection is gone")
        finally:
            self.idling.clear()
            client.idle_done()

    # -- the work ---------------------------------------------------------------------------
    def poll_once(self, client: IMAPClient) -> int:
        account = self.account
        selected = client.select_folder(account.folder)
        self._unsolicited(client).pop("EXISTS", None)  # SELECT's own count is no news
        uidvalidity = int(selected[b"UIDVALIDITY"])
        # Exchange Online, for one, takes no keywords of ours: then \Seen / \Flagged only.
        self._keywords = b"\\*" in tuple(selected.get(b"PERMANENTFLAGS") or (b"\\*",))
        last_uid = self._last_uid(uidvalidity)
        # "UID n:*" always returns the highest UID even when it is below n: filter ourselves.
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        taken = 0
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            sizes = {
                uid: int(data.get(b"RFC822.SIZE") or 0)
                for uid, data in client.fetch(batch, ["RFC822.SIZE"]).items()
            }
            for chunk in self._chunks([uid for uid in batch if uid in sizes], sizes):
                wanted = [uid for uid in chunk if not self._too_large(sizes[uid])]
                fetched = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
                bodies = {uid: fetched[uid][b"BODY[]"] for uid in wanted if b"BODY[]" in fetched.get(uid, {})}
                keep = [uid for uid in chunk if uid in bodies and not self._too_large(len(bodies[uid]))]
                # One commit for the mails of the chunk (group commit); any failure fails them all.
                results = store_many(
                    self.db,
                    [Incoming(bytes(bodies[uid]), "", [account.mailbox], "imap") for uid in keep],
                    now=self.clock(),
                    grace=timedelta(seconds=self.grace_seconds),
                    enqueue=self.enqueue,
                )
                stored = dict(zip(keep, results, strict=True))
                for uid in chunk:  # in UID order, each only after the commit that holds it
                    if uid in stored:
                        result = stored[uid]
                        if isinstance(result, Exception):
                            raise result
                        self._advance(uidvalidity, uid, new=not result.stored[0].duplicate)
                        self._after_commit(client, uid)
                        taken += 1
                        metrics.imap_taken(account.dealer_id, account.user)
                    elif uid in wanted and uid not in bodies:
                        continue  # expunged by someone else meanwhile
                    else:
                        size = len(bodies[uid]) if uid in bodies else sizes[uid]
                        self._leave_too_large(client, uidvalidity, uid, size)
        self._status(connected=True, success=True)
        return taken

    def _too_large(self, size: int) -> bool:
        return self.max_bytes is not None and size > self.max_bytes

    def _chunks(self, uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
        """UIDs in order, cut so one FETCH brings at most FETCH_BATCH_BYTES of bodies."""
        chunk: list[int] = []
        total = 0
        for uid in uids:
            size = 0 if self._too_large(sizes[uid]) else sizes[uid]
            if chunk and total + size > FETCH_BATCH_BYTES:
                yield chunk
                chunk, total = [], 0
            chunk.append(uid)
            total += size
        if chunk:
            yield chunk

    def _leave_too_large(self, client: IMAPClient, uidvalidity: int, uid: int, size: int) -> None:
        """Record the mail and move the ledger past it in one transaction, then mark it in the
        mailbox for a person: never stored, never fetched again, never lost from sight."""
        headers = client.fetch([uid], ["BODY.PEEK[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)]"]).get(uid, {})
        raw_headers = next((v for k, v in headers.items() if k.startswith(b"BODY[HEADER")), b"") or b""
        parsed = BytesHeaderParser(policy=default_policy).parsebytes(bytes(raw_headers))

        def header(name: str) -> str | None:
            try:
                value = parsed.get(name)
            except Exception:  # a broken encoded word must not stop the poller
                return None
            return " ".join(str(value).split())[:500] if value is not None else None

        now = self.clock()
        reason = f"{size} bytes, larger than LMS_SMTP_MAX_BYTES ({self.max_bytes}); left in the mailbox"
        with self.db.session() as session:
            session.execute(
                dialect_insert(session, ImapSkipped)
                .values(
                    account=self.account.key,
                    folder=self.account.folder,
                    uidvalidity=uidvalidity,
                    uid=uid,
                    size=size,
                    reason=reason,
                    sender=header("From"),
                    subject=header("Subject"),
                    message_id=header("Message-ID"),
                    at=now,
                )
                .on_conflict_do_nothing(index_elements=["account", "folder", "uidvalidity", "uid"])
            )
        self._advance(uidvalidity, uid, new=False)
        log.warning("IMAP %s: UID %s not stored: %s", self.account.key, uid, reason)
        flags = [b"\\Flagged"] + ([TOO_LARGE_KEYWORD.encode()] if self._keywords else [])
        client.add_flags([uid], flags)

    def _after_commit(self, client: IMAPClient, uid: int) -> None:
        if self.account.after == "move" and self.account.move_to:
            if not client.folder_exists(self.account.move_to):
                try:
                    client.create_folder(self.account.move_to)
                except IMAPClientError as exc:
                    # Another session made it meanwhile (or the server's LIST lagged behind):
                    # [ALREADYEXISTS], RFC 5530, is what we wanted.
                    if "ALREADYEXISTS" not in str(exc).upper():
                        raise
            client.move([uid], self.account.move_to)
        else:
            flags = [b"\\Seen"] + ([OUR_KEYWORD.encode()] if self._keywords else [])
            client.add_flags([uid], flags)

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

    def _status(
        self, *, connected: bool, success: bool = False, error: str | None = None, kind: str | None = None
    ) -> None:
        now = self.clock()
        try:
            with self.db.session() as session:
                row = self._status_row(session, now)
                row.connected, row.updated_at = connected, now
                if success:
                    row.last_success_at = now
                if connected:
                    row.error_kind, row.failing_since = None, None
                if error:
                    row.last_error, row.last_error_at = error[:2000], now
                    row.error_kind = kind or "server"
                    row.failing_since = row.failing_since or now
        except Exception:
            log.exception("could not record the IMAP status of %s", self.account.key)


def run_pollers(
    accounts: list[ImapAccount], factory: Callable[[ImapAccount], ImapPoller]
) -> list[ImapPoller]:
    pollers = [factory(account) for account in accounts]
    for poller in pollers:
        poller.start()
    return pollers
