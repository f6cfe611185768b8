"""What every ``lms`` command module shares: settings, the database, one-sentence errors."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from models.db import Database
from models.settings import Settings


def settings() -> Settings:
    return Settings()


def fail(message: str, code: int = 1) -> NoReturn:
    """A user mistake: one sentence on stderr, a non-zero exit, no traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def open_db() -> Database:
    s = settings()
    return Database(s.database_url, **s.database_options())


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))
