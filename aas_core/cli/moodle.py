"""``aas moodle``: a course's attendance to Moodle's Attendance activity (push, or CSV export)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail

app = typer.Typer(help="Moodle's Attendance activity (mod_attendance).", no_args_is_help=True)


@app.command("push")
def push(
    ctx: typer.Context,
    course: Annotated[str, typer.Option("--course", help="Course code.")],
    session: Annotated[list[int] | None, typer.Option(
        "--session", help="Only this AAS session (repeatable; default: every decided session).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Read from Moodle, print every write it would send (token as ***), send none.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Push final statuses through Moodle's web services (mod_attendance_update_user_status)."""
    from aas_core.services import moodle

    c = ctx_of(ctx)
    try:
        result = moodle.push(c.url, CLI_ADMIN, course, c.settings, session_ids=session or None, dry_run=dry_run)
    except moodle.MoodleError as exc:
        raise fail(str(exc)) from None
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.as_json()))
        return
    for sp in result.sessions:
        where = f"Moodle session {sp.moodle_session_id}" if sp.moodle_session_id else "no Moodle session"
        typer.echo(f"session {sp.session_id} -> {where}: {sp.to_send} update(s), {sp.unchanged} unchanged")
        for who, why in sp.skipped:
            typer.echo(f"  skipped {who}: {why}")
    if dry_run:
        typer.echo(f"\ndry run: {len(result.reads)} read request(s) sent, {len(result.writes)} write request(s) "
                   "NOT sent:")
        for req in result.writes:
            typer.echo(f"\n{req.shown(result.base_url)}")
    else:
        typer.echo(f"sent {result.sent} status update(s) to Moodle")


@app.command("export")
def export(
    ctx: typer.Context,
    course: Annotated[str, typer.Option("--course", help="Course code.")],
    session: Annotated[int | None, typer.Option("--session", help="One session (default: every decided one).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the files (default: the current one); with --session, '-' prints it.")] = None,
) -> None:
    """CSV files for the Attendance activity's "Import attendance" (one file per session)."""
    from aas_core.services import moodle

    c = ctx_of(ctx)
    try:
        ids = [session] if session is not None else moodle.decided_session_ids(c.url, CLI_ADMIN, course)
        if not ids:
            raise fail(f"course {course} has no decided session yet")
        files = [moodle.export_csv(c.url, CLI_ADMIN, course, sid) for sid in ids]
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    if session is not None and str(out) == "-":
        typer.echo(files[0][1].decode(), nl=False)
        return
    folder = out or Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (folder / name).write_bytes(data)
        typer.echo(str(folder / name))
