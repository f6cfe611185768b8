"""The long-running components, alone or together, and the one-shot setup (``lms migrate``)."""

from __future__ import annotations

import click

from lms.common import fail, open_db, settings
from lms.processes import run_components
from models.clock import system_clock
from models.dealer_config import ConfigError


@click.command()
def run() -> None:
    """Everything in one process: SMTP intake, IMAP pollers, workers, scheduler, web."""
    run_components(settings(), smtp=True, worker=True, scheduler=True, imap=True, web=True, lmtp=True)


@click.command()
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=None,
    help="Acceptor processes sharing the port (default LMS_SMTP_PROCESSES, 1).",
)
def smtp(processes: int | None) -> None:
    """The SMTP intake only."""
    s = settings()
    if processes:
        s.smtp_processes = processes
    run_components(s, smtp=True, worker=False, scheduler=False)


@click.command()
@click.option(
    "--listen", default=None, help="Unix socket path or loopback HOST:PORT (default LMS_LMTP_LISTEN)."
)
def lmtp(listen: str | None) -> None:
    """The LMTP intake only, for a mail server's lmtp: transport (RFC 2033)."""
    s = settings()
    if listen:
        s.lmtp_listen = listen
    if not s.lmtp_listen:
        fail("no LMTP address: set LMS_LMTP_LISTEN or pass --listen (a socket path or 127.0.0.1:PORT)")
    run_components(s, smtp=False, worker=False, scheduler=False, lmtp=True)


@click.command()
def web() -> None:
    """The web pane and its JSON API only (LMS_WEB_LISTEN)."""
    run_components(settings(), smtp=False, worker=False, scheduler=False, web=True)


@click.command()
@click.option("--threads", type=int, default=None, help="Worker threads (default LMS_WORKER_THREADS).")
def worker(threads: int | None) -> None:
    """The Dramatiq workers only (ingest and send)."""
    s = settings()
    if threads:
        s.worker_threads = threads
    run_components(s, smtp=False, worker=True, scheduler=False)


@click.command()
@click.option("--once", is_flag=True, help="Sweep once and exit.")
def scheduler(once: bool) -> None:
    """Time-based work: the sweeper (rows stuck in a non-final state) and escalations."""
    from workers.runtime import build_runtime

    s = settings()
    if not once:
        run_components(s, smtp=False, worker=False, scheduler=True)
        return
    runtime = build_runtime(s)
    try:
        result = runtime.sweep_once()
        fired = runtime.escalate_once()
        runtime.retention_once()
    finally:
        runtime.close()
    click.echo(
        f"re-enqueued {result.inbound} inbound and {result.outbound} outbound messages; "
        f"escalations fired {sum(fired.fired.values())}, skipped {fired.skipped}"
    )


@click.command()
def migrate() -> None:
    """Apply the database migrations (and the dealer file named by LMS_CONFIG, if set)."""
    from models.config_apply import apply_config
    from models.migrate import upgrade
    from workers.config_checks import load_checked

    db = open_db()
    path = settings().config
    try:
        upgrade(db)
        click.echo("database is up to date")
        if path:
            with db.session() as session:
                applied = apply_config(session, load_checked(path), now=system_clock())
            click.echo(f"applied {path}: {', '.join(applied) or 'no dealers'}")
    except ConfigError as exc:
        fail(f"{path}: {exc}; the configuration in force is unchanged")
    finally:
        db.dispose()
