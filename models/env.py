"""The few ``LMS_*`` settings the MTA pipe needs, read straight from the environment.

``lms deliver`` runs once per mail: pydantic-settings alone costs more to import than a whole
delivery should. :class:`models.settings.Settings` takes its defaults for these from here, so
the two readings cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DATABASE_URL = "sqlite:///var/lms.db"
BROKER_URL = "memory://"
QUEUE_PREFIX = "lms"
SMTP_MAX_BYTES = 26_214_400
SQLITE_BUSY_TIMEOUT_MS = 15_000
DATABASE_STATEMENT_TIMEOUT_SECONDS = 30.0
DATABASE_CONNECT_TIMEOUT_SECONDS = 5.0
SWEEP_GRACE_SECONDS = 60.0
STORE_TIMEOUT_SECONDS = 60.0
LOG_FORMAT = "text"


def env_value(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """``LMS_<NAME>``, case-insensitive like pydantic-settings."""
    env = os.environ if environ is None else environ
    wanted = f"LMS_{name}".upper()
    if wanted in env:
        return env[wanted]
    for key, value in env.items():
        if key.upper() == wanted:
            return value
    return default


def is_real_broker(broker_url: str) -> bool:
    """Anything but the in-process broker reaches workers in other processes."""
    return not broker_url.startswith("memory")


@dataclass(frozen=True)
class PipeSettings:
    database_url: str = DATABASE_URL
    broker_url: str = BROKER_URL
    queue_prefix: str = QUEUE_PREFIX
    smtp_max_bytes: int = SMTP_MAX_BYTES
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
    database_statement_timeout_seconds: float = DATABASE_STATEMENT_TIMEOUT_SECONDS
    database_connect_timeout_seconds: float = DATABASE_CONNECT_TIMEOUT_SECONDS
    sweep_grace_seconds: float = SWEEP_GRACE_SECONDS
    store_timeout_seconds: float = STORE_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipeSettings:
        """Raises ValueError naming the variable when a value is not a number."""
        values: dict[str, object] = {}
        for name, default in cls.__dataclass_fields__.items():
            raw = env_value(name, "", environ)
            if raw == "":
                continue
            kind = type(default.default)
            try:
                number = kind(raw) if kind in (int, float) else raw
            except ValueError:
                raise ValueError(f"LMS_{name.upper()} must be a number, not {raw!r}") from None
            if kind in (int, float) and number < 0:  # type: ignore[operator]
                raise ValueError(f"LMS_{name.upper()} must not be negative")
            values[name] = number
        return cls(**values)  # type: ignore[arg-type]
