"""The ``aas`` command line (Typer). A stable contract: scripts and benchmarks rely on
these command names and on the JSON printed with ``--json``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from aas_core.config import Settings, get_settings, redact_url

app = typer.Typer(help="AAS: automated classroom attendance by face recognition.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
course_app = typer.Typer(help="Courses.", no_args_is_help=True)
student_app = typer.Typer(help="Students.", no_args_is_help=True)
session_app = typer.Typer(help="Class sessions.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluation on labelled folders.", no_args_is_help=True)
models_app = typer.Typer(help="Model weights: list, fetch.", no_args_is_help=True)
user_app = typer.Typer(help="Dashboard accounts.", no_args_is_help=True)
app.add_typer(course_app, name="course")
app.add_typer(student_app, name="student")
app.add_typer(session_app, name="session")
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")
app.add_typer(user_app, name="user")


@dataclass
class Ctx:
    settings: Settings

    @property
    def url(self) -> str:
        return self.settings.database_url


def _ctx(ctx: typer.Context) -> Ctx:
    obj = ctx.find_root().obj
    assert isinstance(obj, Ctx)
    return obj


def fail(msg: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Overrides AAS_DATABASE_URL.")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir", help="Overrides AAS_MODELS_DIR.")] = None,
) -> None:
    settings = get_settings()
    update = {}
    if database_url:
        update["database_url"] = database_url
    if models_dir:
        update["models_dir"] = models_dir
    ctx.obj = Ctx(settings.model_copy(update=update) if update else settings)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create or upgrade the database schema (idempotent)."""
    from aas_core.db import init_db

    c = _ctx(ctx)
    try:
        init_db(c.url)
    except Exception as exc:
        raise fail(f"could not initialise {redact_url(c.url)}: {exc.__class__.__name__}: {exc}") from None
    typer.echo(f"database ready: {redact_url(c.url)}")


# --- courses ---------------------------------------------------------------------------------

@course_app.command("add")
def course_add(ctx: typer.Context, code: str, name: Annotated[str, typer.Option("--name")],
               schedule: Annotated[str | None, typer.Option("--schedule")] = None) -> None:
    """Create a course."""
    from aas_core.db import repo, session_scope

    c = _ctx(ctx)
    try:
        with session_scope(c.url) as s:
            repo.add_course(s, code, name, schedule=schedule, actor="cli")
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"course {code} created")


@course_app.command("list")
def course_list(ctx: typer.Context) -> None:
    """List courses with roster sizes."""
    from aas_core.db import repo, session_scope

    with session_scope(_ctx(ctx).url) as s:
        for course in repo.list_courses(s):
            typer.echo(f"{course.code}\t{course.name}\t{len(course.enrollments)} students")


# --- students --------------------------------------------------------------------------------

@student_app.command("add")
def student_add(
    ctx: typer.Context, sid: str, name: Annotated[str, typer.Option("--name")],
    course: Annotated[str | None, typer.Option("--course")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    consent: Annotated[bool, typer.Option("--consent/--no-consent",
                                          help="Record that the student consented to face enrollment.")] = True,
) -> None:
    """Add a student (and put them on a course roster)."""
    from aas_core.db import repo, session_scope

    c = _ctx(ctx)
    try:
        with session_scope(c.url) as s:
            st = repo.add_student(s, sid, name, email=email, consent=consent, actor="cli")
            if course:
                repo.enroll_in_course(s, repo.get_course(s, course), st, actor="cli")
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"student {sid} added" + (f" to {course}" if course else ""))


@student_app.command("list")
def student_list(ctx: typer.Context) -> None:
    from aas_core.db import repo, session_scope

    with session_scope(_ctx(ctx).url) as s:
        for st in repo.list_students(s):
            typer.echo(f"{st.student_number}\t{st.name}\t{len(st.samples)} samples")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
