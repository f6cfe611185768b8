"""The production files: every command a container runs is a real ``lms`` subcommand.

No Docker engine runs on these machines, so the compose file is checked against the CLI.
"""

from __future__ import annotations

import click
import yaml

from lms.cli import main
from tests.support.processes import ROOT


def resolve(args: list[str]) -> click.Command:
    command: click.Command = main
    for index, word in enumerate(args):
        if word.startswith("-"):
            break
        assert isinstance(command, click.Group), f"{' '.join(args[:index])} takes no subcommand {word!r}"
        sub = command.get_command(click.Context(command), word)
        assert sub is not None, f"`lms {' '.join(args[: index + 1])}` is no lms command"
        command = sub
        if not isinstance(command, click.Group):
            params = {opt for p in command.params for opt in getattr(p, "opts", [])}
            for flag in (a.split("=")[0] for a in args[index + 1 :] if a.startswith("-")):
                assert flag in params, f"`lms {' '.join(args)}`: unknown option {flag}"
            break
    # A group runs only if it does something without a subcommand (bare `lms imap`: the pollers).
    runnable = not isinstance(command, click.Group) or command.invoke_without_command
    assert runnable, f"`lms {' '.join(args)}` names a group, not a command"
    return command


def test_every_compose_service_of_ours_runs_a_real_lms_command() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    ours = {name: s for name, s in compose["services"].items() if s.get("image", "").startswith("lms")}
    assert set(ours) >= {"smtp", "worker-1", "worker-2", "scheduler", "migrate"}
    for name, service in ours.items():
        resolve(service["command"])
        health = service.get("healthcheck", {}).get("test", [])
        if health[1:2] == ["lms"]:
            resolve(health[2:])
        if name != "migrate":
            assert "healthcheck" in service, f"{name} has no health check"
    for name in ("postgres", "redis"):
        assert "healthcheck" in compose["services"][name]


def test_the_image_runs_lms() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["lms"]' in dockerfile
    assert "pip install ." in dockerfile


def test_the_resolver_refuses_what_is_not_there() -> None:
    for bad in (["serve"], ["ops"], ["worker", "--nonsense"]):
        try:
            resolve(bad)
        except AssertionError:
            continue
        raise AssertionError(f"{bad} was accepted")
