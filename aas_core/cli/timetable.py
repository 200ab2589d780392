"""``aas timetable``: import a course's timetable (CSV or iCalendar), show it with its next and missed meetings."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail

app = typer.Typer(help="Course timetables.", no_args_is_help=True)

Course = Annotated[str, typer.Option("--course", help="Course code.")]


def _date(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


@app.command("import")
def timetable_import(
    ctx: typer.Context, file: Path, course: Course,
    timezone: Annotated[str | None, typer.Option("--timezone", help="IANA zone, e.g. Europe/Berlin")] = None,
    term_start: Annotated[str | None, typer.Option("--term-start", help="YYYY-MM-DD")] = None,
    term_end: Annotated[str | None, typer.Option("--term-end", help="YYYY-MM-DD")] = None,
) -> None:
    """Replace the course's timetable with FILE (.csv or .ics); all or nothing.

    CSV columns what,day,start,end,room; rows: timezone,Europe/Berlin / term_start,2026-02-16 /
    term_end,2026-06-12 / weekly,Mon,09:00,10:30,B-204 / cancel,2026-04-06 /
    extra,2026-05-02,10:00,11:30,A-101. iCalendar: every event, recurrences (RRULE, EXDATE) expanded.
    """
    from aas_core.domain.timetable import TimetableError, describe
    from aas_core.services import timetable as svc

    c = ctx_of(ctx)
    starts, ends = _date(term_start, "--term-start"), _date(term_end, "--term-end")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"{file}: {exc.strerror or exc}") from None
    try:
        result = svc.import_timetable(c.url, CLI_ADMIN, course, file.name, data, timezone=timezone,
                                      term_start=starts, term_end=ends)
    except (TimetableError, ValueError, LookupError) as exc:
        raise fail(f"{file.name}: not imported: {exc}") from None
    for note in result.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{course}: timetable imported, {result.meetings} meetings")
    for line in describe(result.timetable):
        typer.echo(f"  {line}")


@app.command("show")
def timetable_show(ctx: typer.Context, course: Course,
                   next_n: Annotated[int, typer.Option("--next", min=0, max=500, help="How many next meetings.")] = 5,
                   as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The course's timetable, its next meetings and the meetings missed while no scheduler ran."""
    from aas_core.domain.timetable import Timetable, describe
    from aas_core.services import timetable as svc

    c = ctx_of(ctx)
    try:
        shown = svc.show(c.url, CLI_ADMIN, course, n=next_n)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(shown))
        return
    if shown["timetable"] is None:
        typer.echo(f"{course} has no timetable (aas timetable import --course {course} FILE)")
        return
    for line in describe(Timetable.model_validate(shown["timetable"])):
        typer.echo(line)
    typer.echo("next meetings:" if shown["next"] else "no further meeting")
    for m in shown["next"]:
        typer.echo(f"  {m['local_start'][:16].replace('T', ' ')}-{m['local_end'][11:16]}\t{m['room'] or '-'}"
                   f"\t{m['key']}")
    _print_missed(shown["missed"])


def _print_missed(missed: list[dict]) -> None:
    if missed:
        typer.echo(f"missed meetings ({len(missed)}):")
    for m in missed:
        typer.echo(f"  {m['start']}\t{m['room'] or '-'}\t{m['reason']}")


@app.command("missed")
def timetable_missed(ctx: typer.Context, course: Course,
                     as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Meetings no session was opened for because no scheduler was running at their start."""
    from aas_core.services import timetable as svc

    c = ctx_of(ctx)
    try:
        missed = [m.as_json() for m in svc.missed_meetings(c.url, CLI_ADMIN, course)]
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(missed))
    elif missed:
        _print_missed(missed)
    else:
        typer.echo(f"{course}: no missed meeting")
