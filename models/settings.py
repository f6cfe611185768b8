"""Process settings, read from ``LMS_*`` environment variables (INTERFACE.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models import env


def split_host_port(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:2525"`` → ``("127.0.0.1", 2525)``; ``[::1]:25`` is understood too."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {listen!r} must look like HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LMS_", extra="ignore")

    database_url: str = env.DATABASE_URL
    broker_url: str = env.BROKER_URL
    # Prefix of every queue name, so several installations (or test runs) can share a broker.
    queue_prefix: str = env.QUEUE_PREFIX
    smtp_listen: str = "127.0.0.1:2525"
    smtp_max_bytes: int = Field(default=env.SMTP_MAX_BYTES, gt=0)
    web_listen: str = "127.0.0.1:8025"
    # Mark the session cookie Secure: set it when the pane is served over HTTPS (a proxy).
    web_secure_cookies: bool = False
    # A signed-in session ends after this long without a request, and after the maximum anyway.
    web_session_idle_seconds: float = Field(default=12 * 3600, gt=0)
    web_session_max_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    # Where people reach the pane, for links in mails (invitations); default http://LMS_WEB_LISTEN.
    web_public_url: str | None = None
    web_invitation_hours: float = Field(default=72, gt=0)
    relay_url: str = "maildir://var/outbox"
    relay_timeout: float = Field(default=30.0, gt=0)
    config: str | None = None
    log_format: str = env.LOG_FORMAT
    # How long a SQLite writer waits for the lock before the operation fails (and SMTP says 451).
    sqlite_busy_timeout_ms: int = Field(default=env.SQLITE_BUSY_TIMEOUT_MS, ge=0)
    worker_threads: int = Field(default=4, ge=1)
    # How long a stored row may sit in a non-final state before the sweeper enqueues it again.
    sweep_grace_seconds: float = Field(default=env.SWEEP_GRACE_SECONDS, ge=0)
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    # How often the scheduler applies the dealers' retention periods (GDPR).
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    ingest_max_attempts: int = Field(default=5, ge=1)
    # An autoresponse not delivered within this time is marked expired instead of sent late.
    autoresponse_max_age_seconds: float = Field(default=4 * 3600, gt=0)
    send_max_attempts: int = Field(default=8, ge=1)
    # How long a send may take before its row counts as abandoned (a crashed worker) and is
    # sent again; 0: four times the relay timeout, at least a minute. Longer than any real
    # send, or a slow relay gets the same mail twice.
    send_lease_seconds: float = Field(default=0, ge=0)
    # Webhooks (workers/webhooks.py): attempts before a delivery is dead (backoff doubling from
    # 30 s up to an hour: 12 attempts take about 5 hours), and the timeout of one POST.
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # The actor time limit (Dramatiq TimeLimit middleware), in seconds.
    actor_time_limit_seconds: float = Field(default=120.0, gt=0)
    # Authentication-Results authserv-id(s) our receiving mail server writes (RFC 8601),
    # comma-separated: only the topmost such header is trusted for a portal's DKIM/DMARC pass.
    authserv_id: str = ""
    # Verify DKIM signatures ourselves for mail our SMTP intake received (we are the
    # receiving server then); DNS lookups at ingest.
    dkim_verify: bool = False
    # Encrypts OAuth2 tokens in the database (models/secret_box.py); never stored anywhere.
    secret_key: str | None = None

    # -- intake (SMTP, LMTP, the MTA pipe) ---------------------------------------------------
    # PostgreSQL statement_timeout (lock waits included) and connect timeout: a stuck database
    # gives an error, and the sender a 451, within its patience.
    database_statement_timeout_seconds: float = Field(default=env.DATABASE_STATEMENT_TIMEOUT_SECONDS, ge=0)
    database_connect_timeout_seconds: float = Field(default=env.DATABASE_CONNECT_TIMEOUT_SECONDS, gt=0)
    # The longest a mail may wait for its commit before the sender gets 451 (a frozen database
    # answers nothing at all, so the server-side timeouts above cannot fire).
    store_timeout_seconds: float = Field(default=env.STORE_TIMEOUT_SECONDS, gt=0)
    # Acceptor processes sharing the SMTP port (SO_REUSEPORT); `lms run` keeps one by default.
    smtp_processes: int = Field(default=1, ge=1, le=64)
    smtp_tls_cert: str | None = None
    smtp_tls_key: str | None = None
    # RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted; more get 452.
    smtp_max_recipients: int = Field(default=100, ge=1)
    # Open connections per client address and acceptor process (0: no limit).
    smtp_max_connections_per_client: int = Field(default=50, ge=0)
    smtp_max_session_seconds: float = Field(default=1800.0, gt=0)
    smtp_idle_timeout_seconds: float = Field(default=300.0, gt=0)
    # NOOP, RSET, VRFY, HELP, EHLO/HELO/LHLO per session; any other command at most
    # smtp_max_commands times (a session kept alive with NOOP ends).
    smtp_max_junk_commands: int = Field(default=100, ge=1)
    smtp_max_commands: int = Field(default=10_000, ge=1)
    # Group commit: at most this many mails per commit, collected for at most this long while
    # other sessions are still sending their DATA.
    smtp_group_max: int = Field(default=64, ge=1)
    smtp_group_window_ms: float = Field(default=1.0, ge=0)
    # LMTP intake for mail servers: a Unix socket path or a loopback HOST:PORT; off when unset.
    lmtp_listen: str | None = None

    # -- operations monitoring (issue 14) ----------------------------------------------------
    # /metrics on its own listener (loopback or a private network, no token); unset: /metrics
    # only on the web listener, for an admin's API token.
    metrics_listen: str | None = None
    # prometheus_client's multiprocess directory: every process of one installation on one
    # machine writes there; emptied when `lms run` (or the first component) starts.
    metrics_dir: str = "var/metrics"
    # Health verdict thresholds (lms ops health): relay failures within this many minutes;
    # the oldest pending row older than this; unrecognised mails waiting longer than this.
    health_relay_failure_minutes: float = Field(default=15.0, gt=0)
    health_pending_seconds: float = Field(default=600.0, gt=0)
    health_unrecognised_hours: float = Field(default=24.0, gt=0)
    # Where the end-to-end probe (via smtp) hands its mail over: our SMTP intake as this
    # process reaches it (e.g. "smtp:2525" in docker-compose); unset: LMS_SMTP_LISTEN.
    probe_smtp: str | None = None

    def database_options(self) -> dict[str, float | int]:
        """Keyword arguments of :class:`models.db.Database` from these settings."""
        return {
            "sqlite_busy_timeout_ms": self.sqlite_busy_timeout_ms,
            "statement_timeout_ms": int(self.database_statement_timeout_seconds * 1000),
            "connect_timeout_seconds": self.database_connect_timeout_seconds,
        }
