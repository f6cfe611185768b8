"""What the IMAP tests share: a stack whose dealer polls one mailbox, its poller, its status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from intake.imap import ImapPoller, accounts_from
from lms.cli import main
from models.tables import Dealer, InboundMessage
from tests.support.dovecot import Dovecot
from tests.support.stack import DEMO_CONFIG, Stack

SECRET_KEY = "test-secret-key-0123456789abcdefghij"


def make_stack(tmp_path: Path, url: str, imap_toml: str, **settings: Any) -> Stack:
    for asset in ("header.png", "expose.pdf"):
        shutil.copy(DEMO_CONFIG.parent / asset, tmp_path / asset)
    config = tmp_path / "dealer.toml"
    config.write_text(DEMO_CONFIG.read_text() + imap_toml)
    settings.setdefault("relay_url", f"maildir://{tmp_path}/outbox")
    settings.setdefault("worker_threads", None)
    settings.setdefault("smtp", False)
    return Stack(url, config=config, **settings)


def poller(stack: Stack, **options: Any) -> ImapPoller:
    with stack.db.session() as session:
        [account] = accounts_from(list(session.scalars(select(Dealer))))
    options.setdefault("backoff_max", 0.5)
    return ImapPoller(
        account,
        stack.db,
        enqueue=None,
        secret_key=stack.settings.secret_key,
        max_bytes=stack.settings.smtp_max_bytes,
        **options,
    )


def ops_status(stack: Stack) -> dict[str, Any]:
    env = {"LMS_DATABASE_URL": stack.settings.database_url}
    result = CliRunner(env=env).invoke(main, ["ops", "status", "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def imap_status(stack: Stack) -> dict[str, Any]:
    boxes = ops_status(stack)["imap"]
    return boxes[0] if boxes else {}


def stored(stack: Stack) -> list[InboundMessage]:
    return [row for row in stack.inbound() if row.via == "imap"]


def subjects(stack: Stack) -> list[bytes]:
    return sorted(r.raw.split(b"Subject: ")[1].split(b"\r\n")[0] for r in stored(stack))


def logins(dovecot: Dovecot) -> list[str]:
    return [line for line in (dovecot.dir / "dovecot.log").read_text().splitlines() if "Login: user=" in line]
