"""``aas course``: add, list, config."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail

app = typer.Typer(help="Courses.", no_args_is_help=True)


@app.command("add")
def course_add(ctx: typer.Context, code: str, name: Annotated[str, typer.Option("--name")],
               schedule: Annotated[str | None, typer.Option("--schedule")] = None) -> None:
    """Create a course (its config starts from the installation's defaults)."""
    from aas_core.services import courses

    c = ctx_of(ctx)
    try:
        courses.create_course(c.url, CLI_ADMIN, c.settings, code, name, schedule=schedule)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"course {code} created")


@app.command("list")
def course_list(ctx: typer.Context) -> None:
    """List courses with roster sizes."""
    from aas_core.services import courses

    for course in courses.list_courses(ctx_of(ctx).url, CLI_ADMIN):
        typer.echo(f"{course.code}\t{course.name}\t{course.students} students")


@app.command("config")
def course_config(
    ctx: typer.Context, code: str,
    assignments: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Change one setting, e.g. plan.snapshots=5, rules.min_confidence=0.5, camera=room101, "
             "recognition.threshold=null (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a course's validated config, or change settings with --set (all or nothing)."""
    from aas_core.domain.course_config import ConfigError
    from aas_core.services import courses

    c = ctx_of(ctx)
    try:
        if assignments:
            config, changed, _ = courses.update_config(c.url, CLI_ADMIN, code, assignments=assignments)
            typer.echo(f"changed: {', '.join(changed) or 'nothing'}", err=True)
        else:
            config = courses.get_course(c.url, CLI_ADMIN, code).config
    except ConfigError as exc:
        raise fail(f"not saved: {exc}") from None
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    data = config.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(data))
        return
    for section, values in data.items():
        if isinstance(values, dict):
            for k, v in values.items():
                typer.echo(f"{section}.{k}\t{json.dumps(v)}")
        else:
            typer.echo(f"{section}\t{json.dumps(values)}")
