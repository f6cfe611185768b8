"""``lms``: every component and every operator action (INTERFACE.md "The lms command").

Subcommands are imported only when they run. ``lms deliver`` is started by a mail server for
every single message: it must not pay for importing the web pane, the workers, Jinja2 or
Alembic. ``lms --help`` still lists every command (it imports them all to show their help).

User mistakes end with one clear sentence on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# name → "module:attribute"; each module holds one group of commands and imports what it needs.
COMMANDS: dict[str, str] = {
    "run": "lms.commands.components:run",
    "smtp": "lms.commands.components:smtp",
    "lmtp": "lms.commands.components:lmtp",
    "web": "lms.commands.components:web",
    "imap": "lms.commands.imap:imap",
    "worker": "lms.commands.components:worker",
    "scheduler": "lms.commands.components:scheduler",
    "migrate": "lms.commands.components:migrate",
    "config": "lms.commands.config:config",
    "deliver": "lms.commands.deliver:deliver_cmd",
    "ingest": "lms.commands.mail_in:ingest_cmd",
    "parse": "lms.commands.mail_in:parse_cmd",
    "leads": "lms.commands.leads:leads",
    "unassigned": "lms.commands.unassigned:unassigned",
    "templates": "lms.commands.templates:templates",
    "ops": "lms.commands.ops:ops",
    "contacts": "lms.commands.contacts:contacts",
    "users": "lms.commands.users:users",
    "report": "lms.commands.report:report",
}


def _database_unreachable(exc: BaseException) -> bool:
    # Checked without importing SQLAlchemy: a command that never touched it cannot raise it.
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.OperationalError)


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; an unreachable database becomes
    one sentence instead of a traceback."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module_name, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not _database_unreachable(exc):
                raise
            from lms.common import fail

            fail(f"the database is not reachable or not migrated ({exc.orig}); run `lms migrate`?")  # type: ignore[attr-defined]


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(package_name="lms")
def main() -> None:
    """Lead intake daemon: mail in, leads out, autoresponses and escalations."""
    # Read without pydantic: `lms deliver` runs once per mail and must start fast.
    from lms.logs import setup_logging
    from models.env import LOG_FORMAT, env_value

    setup_logging(env_value("log_format", LOG_FORMAT))


if __name__ == "__main__":
    main()
