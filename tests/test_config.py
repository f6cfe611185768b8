"""``lms config check|apply|show``: a bad file is refused with the key and the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lms.cli import main
from models.db import Database
from models.migrate import upgrade
from tests.support.stack import DEMO_CONFIG

GOOD = DEMO_CONFIG.read_text()


@pytest.fixture
def cli(db_url: str) -> CliRunner:
    upgrade(Database(db_url))
    return CliRunner(env={"LMS_DATABASE_URL": db_url})


def write(tmp_path: Path, text: str, name: str = "dealer.toml") -> str:
    for asset in ("header.png", "expose.pdf"):  # the demo's template files, beside it
        shutil.copy(DEMO_CONFIG.parent / asset, tmp_path / asset)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_demo_configuration_applies_and_shows(cli: CliRunner) -> None:
    result = cli.invoke(main, ["config", "apply", str(DEMO_CONFIG)])
    assert result.exit_code == 0, result.output
    shown = json.loads(cli.invoke(main, ["config", "show", "--json"]).stdout)
    [dealer] = shown["dealers"]
    assert dealer["id"] == "muster"
    assert dealer["mailboxes"] == ["muster@leads.example.com"]
    assert [u["id"] for u in dealer["users"]] == ["max", "anna", "ben", "olga"]
    # Applying again is idempotent.
    assert cli.invoke(main, ["config", "apply", str(DEMO_CONFIG)]).exit_code == 0


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (('supervisor = "max"', 'supervisr = "max"'), "dealers[0].users[1].supervisr", "unknown key"),
        (('supervisor = "max"', 'supervisor = "moritz"'), "dealers[0].users[1].supervisor", "unknown user"),
        (('stage1 = "2h"', 'stage1 = "2 hours"'), "dealers[0].escalation.stage1", "no duration"),
        (('timezone = "Europe/Berlin"', 'timezone = "Berlin"'), "dealers[0].timezone", "time zone"),
        (('tue = "08:00-18:00"', 'tue = "18:00-08:00"'), "dealers[0].hours.tue", "opening block"),
        (
            ('users = ["anna", "ben"]', 'users = ["anna", "bob"]'),
            "dealers[0].distribution.default.users",
            "unknown user 'bob'",
        ),
        (
            ('mailboxes = ["muster@leads.example.com"]', 'mailboxes = ["not-an-address"]'),
            "dealers[0].mailboxes[0]",
            "not an email address",
        ),
    ],
)
def test_a_bad_file_is_refused_with_key_and_reason_and_nothing_changes(
    cli: CliRunner, tmp_path: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    assert cli.invoke(main, ["config", "apply", str(DEMO_CONFIG)]).exit_code == 0
    before = cli.invoke(main, ["config", "show", "--json"]).stdout
    bad = write(
        tmp_path, GOOD.replace(*change, 1).replace('name = "Autohaus Muster GmbH"', 'name = "Changed"')
    )

    checked = cli.invoke(main, ["config", "check", bad])
    applied = cli.invoke(main, ["config", "apply", bad])
    for result in (checked, applied):
        assert result.exit_code != 0
        assert key in result.output and reason in result.output
        assert "Traceback" not in result.output
    assert "unchanged" in applied.output
    assert cli.invoke(main, ["config", "show", "--json"]).stdout == before


def test_a_file_that_is_no_toml_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(main, ["config", "check", write(tmp_path, "[[dealers]\nid = 1")])
    assert result.exit_code != 0 and "not valid TOML" in result.output


def test_a_mailbox_of_another_dealer_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(main, ["config", "apply", str(DEMO_CONFIG)]).exit_code == 0
    other = write(
        tmp_path, '[[dealers]]\nid = "other"\nname = "Other"\nmailboxes = ["muster@leads.example.com"]\n'
    )
    result = cli.invoke(main, ["config", "apply", other])
    assert result.exit_code != 0
    assert "dealers[0].mailboxes[0]" in result.output and "belongs to dealer 'muster'" in result.output


def test_imap_passwords_are_never_shown(cli: CliRunner, tmp_path: Path) -> None:
    text = GOOD + (
        '\n[[dealers.imap]]\nhost = "imap.example.com"\nuser = "leads"\npassword = "s3cret-Pa55"\n'
    )
    assert cli.invoke(main, ["config", "apply", write(tmp_path, text)]).exit_code == 0
    for args in (["config", "show", "--json"], ["config", "show"]):
        assert "s3cret-Pa55" not in cli.invoke(main, args).output
    shown = json.loads(cli.invoke(main, ["config", "show", "--json"]).stdout)
    assert shown["dealers"][0]["imap"][0]["password"] == "********"
