"""Process settings, read from ``LMS_*`` environment variables (INTERFACE.md)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def split_host_port(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:2525"`` → ``("127.0.0.1", 2525)``; ``[::1]:25`` is understood too."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {listen!r} must look like HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LMS_", extra="ignore")

    database_url: str = "sqlite:///var/lms.db"
    broker_url: str = "memory://"
    # Prefix of every queue name, so several installations (or test runs) can share a broker.
    queue_prefix: str = "lms"
    smtp_listen: str = "127.0.0.1:2525"
    smtp_max_bytes: int = Field(default=26_214_400, gt=0)
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
    log_format: str = "text"
    # How long a SQLite writer waits for the lock before the operation fails (and SMTP says 451).
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)
    worker_threads: int = Field(default=4, ge=1)
    # How long a stored row may sit in a non-final state before the sweeper enqueues it again.
    sweep_grace_seconds: float = Field(default=60.0, ge=0)
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    ingest_max_attempts: int = Field(default=5, ge=1)
    # An autoresponse not delivered within this time is marked expired instead of sent late.
    autoresponse_max_age_seconds: float = Field(default=4 * 3600, gt=0)
    send_max_attempts: int = Field(default=8, ge=1)
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
