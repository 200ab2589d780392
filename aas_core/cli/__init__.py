"""The ``aas`` command line (Typer). A stable contract: scripts and benchmarks rely on these
command names and on the JSON printed with ``--json``. One module per noun (course, student,
session, models, user) plus the admin commands; each calls the services the dashboard uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aas_core.cli import (course, detect, models, moodle, notify, room, scheduler, session, student, timetable, user,
                          worker)
from aas_core.cli.admin import register as _register_admin
from aas_core.cli.common import Ctx, ctx_of, fail
from aas_core.config import get_settings, redact_url

app = typer.Typer(help="AAS: automated classroom attendance by face recognition.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
app.add_typer(course.app, name="course")
app.add_typer(student.app, name="student")
app.add_typer(session.app, name="session")
app.add_typer(models.eval_app, name="eval")
app.add_typer(models.app, name="models")
app.add_typer(user.app, name="user")
app.add_typer(room.app, name="room")
app.add_typer(timetable.app, name="timetable")
app.add_typer(notify.app, name="notify")
app.add_typer(moodle.app, name="moodle")
for extra in (student.enroll_cmds, models.tools, detect.commands, worker.commands, scheduler.commands):
    app.registered_commands += extra.registered_commands


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

    c = ctx_of(ctx)
    try:
        init_db(c.url)
    except Exception as exc:
        raise fail(f"could not initialise {redact_url(c.url)}: {exc.__class__.__name__}: {exc}") from None
    from aas_core.cli.admin import sweep_at_startup

    swept = sweep_at_startup(c.settings)  # files left by a crashed writer (kill -9 mid-write)
    typer.echo(f"database ready: {redact_url(c.url)}" + (f" ({swept} orphan files removed)" if swept else ""))



_register_admin(app, user_app=user.app, student_app=student.app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
