"""``aas notify``: at-risk notices by e-mail (run weekly, e.g. from cron), opt-out and back in."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail

app = typer.Typer(help="E-mail notices (at-risk digest and student notices).", no_args_is_help=True)


@app.command("at-risk")
def at_risk(
    ctx: typer.Context,
    course: Annotated[str, typer.Option("--course", help="Course code.")],
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="At risk below this share attended (default: the course's at_risk.threshold).")] = None,
    last: Annotated[int | None, typer.Option(
        "--last", help="Over the course's last N decided sessions (default: at_risk.last_sessions).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be sent; send nothing.")] = False,
    resend: Annotated[bool, typer.Option("--resend", help="Send again what went out in the last 6 days.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (no addresses, no text).")] = False,
) -> None:
    """The instructor's digest and (when the course enables it) a notice to each at-risk student."""
    from aas_core.services import notify

    c = ctx_of(ctx)
    try:
        plan = notify.send_at_risk(c.url, CLI_ADMIN, course, c.settings, threshold=threshold, last=last,
                                   dry_run=dry_run, resend=resend)
    except notify.NotifyError as exc:
        raise fail(str(exc)) from None
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(plan.as_json()))
        return
    typer.echo(f"{plan.course}: {len(plan.at_risk)} student(s) under {plan.threshold:.0%} over the last "
               f"{len(plan.sessions)} decided session(s)")
    for x in plan.at_risk:
        typer.echo(f"  at risk  {x.student}  {x.summary()}")
    for who, why in plan.skipped:
        typer.echo(f"  not sent  {who}: {why}")
    if dry_run:
        for n in plan.notices:
            typer.echo(f"\n--- would send ({n.kind}) ---\n{n.shown()}")
        typer.echo(f"\ndry run: {len(plan.notices)} notice(s) would be sent, nothing was sent")
    else:
        typer.echo(f"sent {len(plan.sent)} notice(s)")


def _switch(ctx: typer.Context, student_id: str, off: bool) -> None:
    from aas_core.services import notify

    try:
        changed = notify.set_opt_out(ctx_of(ctx).url, CLI_ADMIN, student_id, off, source="cli")
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    state = "off" if off else "on"
    typer.echo(f"{student_id}: at-risk notices {state}" + ("" if changed else " (already)"))


@app.command("opt-out")
def opt_out(ctx: typer.Context, student_id: str) -> None:
    """Stop at-risk notices to a student (at their request)."""
    _switch(ctx, student_id, True)


@app.command("opt-in")
def opt_in(ctx: typer.Context, student_id: str) -> None:
    """Send at-risk notices to a student again."""
    _switch(ctx, student_id, False)
