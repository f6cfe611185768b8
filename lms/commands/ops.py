"""``lms ops``: the operations view and replay of what failed."""

from __future__ import annotations

import sys

import click

from lms.common import emit_json, fail, open_db, settings
from models.clock import system_clock
from models.ops_views import ops_status
from models.tables import Dealer
from workers.ops import retry


@click.group()
def ops() -> None:
    """Operations: queue and failure view, replay."""


@ops.command("status")
@click.option("--json", "as_json", is_flag=True)
def ops_status_cmd(as_json: bool) -> None:
    """Counts per state, queue depths, oldest pending age, dead letters."""
    from workers.runtime import build_runtime

    runtime = build_runtime(settings())
    try:
        queues = runtime.queue_depths()
        with runtime.db.read() as session:
            data = ops_status(session, now=runtime.clock(), queues=queues)
    finally:
        runtime.close()
    if as_json:
        emit_json(data)
        return
    click.echo("inbound:  " + (", ".join(f"{k} {v}" for k, v in sorted(data["inbound"].items())) or "none"))
    click.echo("outbound: " + (", ".join(f"{k} {v}" for k, v in sorted(data["outbound"].items())) or "none"))
    click.echo("webhooks: " + (", ".join(f"{k} {v}" for k, v in sorted(data["webhooks"].items())) or "none"))
    click.echo("queues:   " + (", ".join(f"{k} {v}" for k, v in data["queues"].items()) or "in-process"))
    click.echo(
        f"oldest pending: {data['oldest_pending_seconds']}s · dead: {data['dead']} · failed: {data['failed']}"
    )
    for box in data["imap"]:
        state = "connected" if box["connected"] else "disconnected"
        if box["error_kind"]:
            state = f"FAILING ({box['error_kind']}) since {box['failing_since']}"
        error = f", last error {box['last_error']}" if box["last_error"] else ""
        click.echo(
            f"imap {box['mailbox']} {box['folder']}: {state}, taken {box['taken']}, "
            f"last success {box['last_success'] or '-'}{error}"
        )
        if box["skipped_total"]:
            click.echo(f"  {box['skipped_total']} mail(s) left in the mailbox, not stored:")
            for mail in box["skipped"]:
                sender, subject = mail["from"] or "?", mail["subject"] or ""
                click.echo(f'    UID {mail["uid"]} from {sender} "{subject}": {mail["reason"]}')
    for grant in data["oauth"]:
        note = f", last error {grant['last_error']}" if grant["last_error"] else ""
        click.echo(
            f"oauth {grant['user']} ({grant['dealer']}, {grant['provider']}): {grant['state']}, "
            f"access token until {grant['access_expires_at'] or '-'}{note}"
        )


@ops.command("health")
@click.option("--json", "as_json", is_flag=True)
@click.option("--dealer", help="Only this dealer's part (and what concerns every dealer).")
def ops_health(as_json: bool, dealer: str | None) -> None:
    """The verdict: healthy or the issues. Exit 0 ok, 1 warning, 2 critical (monitoring plugins)."""
    from models.health_facts import health_verdict, thresholds_from

    config = settings()
    db = open_db()
    try:
        with db.read() as session:
            if dealer is not None and session.get(Dealer, dealer) is None:
                fail(f"no dealer {dealer!r} (lms config show lists them)", code=3)
            result = health_verdict(
                session, now=system_clock(), limits=thresholds_from(config), dealer=dealer
            )
    finally:
        db.dispose()
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(
            f"{result.status.upper()}: {len(result.issues)} issue(s)" if result.issues else "OK: healthy"
        )
        for issue in result.issues:
            click.echo(f"  {issue.severity:<8} {issue.check}: {issue.message}")
    sys.exit(result.exit_code)


@ops.command("retry")
@click.option("--inbound", "inbound_id", type=int)
@click.option("--outbound", "outbound_id", type=int)
@click.option("--webhook", "webhook_id", type=int, help="A dead webhook delivery.")
@click.option("--all-failed", is_flag=True, help="Every dead or failed row: mail in and out, webhooks.")
def ops_retry(
    inbound_id: int | None, outbound_id: int | None, webhook_id: int | None, all_failed: bool
) -> None:
    """Put dead or failed rows back in the pipeline (the sweeper picks them up at once)."""
    if not (inbound_id or outbound_id or webhook_id or all_failed):
        fail("say what to retry: --inbound ID, --outbound ID, --webhook ID or --all-failed")
    db = open_db()
    try:
        with db.session() as session:
            done = retry(
                session,
                now=system_clock(),
                inbound_id=inbound_id,
                outbound_id=outbound_id,
                all_failed=all_failed,
                webhook_id=webhook_id,
            )
    finally:
        db.dispose()
    click.echo(f"queued again: {done.inbound} inbound, {done.outbound} outbound, {done.webhooks} webhook(s)")


@ops.command("probe")
@click.option("--dealer", "dealer_id", required=True)
@click.option(
    "--via", type=click.Choice(["smtp", "imap"]), help="Default: the dealer's [dealers.monitoring.probe]."
)
@click.option("--timeout", type=click.FloatRange(min=0.1), help="Seconds to wait for the probe lead.")
@click.option("--json", "as_json", is_flag=True)
def ops_probe(dealer_id: str, via: str | None, timeout: float | None, as_json: bool) -> None:
    """Send a marked test enquiry through the intake, time it until it is a (probe) lead, and
    remove it again. Exit 0 when it arrived, 2 when it did not (timeout or failure)."""
    from models.policy import UnknownDealer
    from workers.probe import ProbeError, run_probe

    db = open_db()
    try:
        result = run_probe(db, settings(), dealer_id, via=via, timeout=timeout)
    except UnknownDealer:
        fail(f"no dealer {dealer_id!r}")
    except ProbeError as exc:
        fail(str(exc), code=2)
    finally:
        db.dispose()
    if as_json:
        emit_json(result.as_json())
    elif result.state == "ok":
        click.echo(
            f"probe {dealer_id} via {result.via}: a probe lead after {result.seconds:.3f}s "
            f"(run {result.run_id}; removed: {result.removed['leads']} lead, "
            f"{result.removed['inbound']} mail)"
        )
    if result.state != "ok":
        fail(f"probe {dealer_id} via {result.via}: {result.state}, {result.error}", code=2)
