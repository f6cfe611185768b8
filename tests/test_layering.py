"""The code's layers, enforced by reading every module's imports (``ast``), not by hoping.

Layers, lowest first: ``models`` (tables, sessions, settings, the clock, pure rules),
``intake`` (mail in; ``intake/parsing`` is pure), ``workers`` (the pipeline and the services
people's actions call), ``web`` (the Leads pane) and ``lms`` (the command line). A package may
import its own and lower layers only. A module that says "(Pure" in its docstring imports no
I/O library and only other pure modules of ours; the rules the issue names must say so.
Imports under ``if TYPE_CHECKING:`` are for type checkers only and do not count.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "templates_email", "intake", "workers", "web", "lms")
ALLOWED: dict[str, set[str]] = {
    "models": {"models"},
    "templates_email": {"templates_email"},
    "intake": {"intake", "models"},
    "workers": {"workers", "intake", "models", "templates_email"},
    "web": {"web", "workers", "intake", "models", "templates_email"},
    "lms": set(PACKAGES),
}
# Libraries that talk to the world (databases, brokers, sockets, mail servers, processes,
# threads, the file system's mail folders): a pure module never needs them.
IO_LIBRARIES = {
    "sqlalchemy",
    "alembic",
    "psycopg",
    "sqlite3",
    "redis",
    "pika",
    "dramatiq",
    "aiosmtpd",
    "smtplib",
    "imaplib",
    "imapclient",
    "socket",
    "ssl",
    "asyncio",
    "threading",
    "subprocess",
    "http",
    "urllib.request",
    "requests",
    "httpx",
    "uvicorn",
    "starlette",
    "fastapi",
    "mailbox",
    "dkim",
    "shutil",
}
MUST_BE_PURE = [
    "intake/parsing/__init__.py",
    "intake/parsing/our_mail.py",  # our own mail's identity: origin header, reply token, Message-ID
    "models/routing.py",
    "models/business_calendar.py",
    "models/escalation.py",
    "models/autoresponse_gate.py",
]


@dataclass(frozen=True)
class Module:
    path: str  # relative, e.g. "workers/ingest.py"
    name: str  # dotted, e.g. "workers.ingest"
    pure: bool
    imports: tuple[str, ...]  # dotted names, type-checking imports left out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.append(node.module)
                # "from workers import outbox" imports the module workers.outbox
                found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def read_modules(root: Path) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if "/migrations/" in relative:
                continue  # Alembic's own files run inside Alembic
            parts = relative.removesuffix(".py").split("/")
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            doc = ast.get_docstring(tree) or ""
            home = name if parts[-1] == "__init__" else ".".join(parts[:-1])
            modules[name] = Module(relative, name, "(Pure" in doc, tuple(_imports(tree, home)))
    return modules


def problems(modules: dict[str, Module]) -> list[str]:
    found: list[str] = []
    for module in modules.values():
        top = module.name.split(".")[0]
        for target in module.imports:
            target_top = target.split(".")[0]
            if target_top in PACKAGES and target_top not in ALLOWED[top]:
                found.append(f"{module.path}: {top} may not import {target} (a higher layer)")
            if not module.pure:
                continue
            if any(target == lib or target.startswith(lib + ".") for lib in IO_LIBRARIES):
                found.append(f"{module.path} is marked pure but imports the I/O library {target}")
            ours = modules.get(target)
            if target_top in PACKAGES and ours is not None and not ours.pure:
                found.append(f"{module.path} is marked pure but imports {target}, which is not")
    return found


def test_every_import_respects_the_layers_and_purity() -> None:
    assert problems(read_modules(ROOT)) == []


@pytest.mark.parametrize("path", MUST_BE_PURE)
def test_the_rules_are_marked_pure(path: str) -> None:
    modules = {m.path: m for m in read_modules(ROOT).values()}
    assert modules[path].pure, f"{path} must say (Pure.) in its docstring and be so"


def test_the_checker_finds_a_forbidden_edge_and_an_impure_pure_module(tmp_path: Path) -> None:
    """The test above would pass on an empty list too: show that it finds real problems."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "models" / "rule.py").write_text(
        '"""A rule. (Pure.)"""\nimport sqlalchemy\nimport models.helper\n'
    )
    (tmp_path / "models" / "helper.py").write_text(
        '"""Touches the database."""\nfrom workers import ingest\n'
    )
    (tmp_path / "models" / "typed.py").write_text(
        '"""(Pure.)"""\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workers import x\n'
    )
    (tmp_path / "intake" / "ok.py").write_text('"""Fine."""\nfrom models import rule\n')
    found = problems(read_modules(tmp_path))
    assert found == [
        "models/helper.py: models may not import workers (a higher layer)",
        "models/helper.py: models may not import workers.ingest (a higher layer)",
        "models/rule.py is marked pure but imports the I/O library sqlalchemy",
        "models/rule.py is marked pure but imports models.helper, which is not",
    ]
