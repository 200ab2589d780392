"""``aas user add`` (list, disable, enable, passwd come with the admin commands)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail

app = typer.Typer(help="Dashboard accounts.", no_args_is_help=True)


@app.command("add")
def user_add(ctx: typer.Context, username: str,
             role: Annotated[str, typer.Option("--role", help="admin | instructor | student")] = "instructor",
             name: Annotated[str | None, typer.Option("--name")] = None,
             student: Annotated[str | None, typer.Option("--student", help="Student id this account belongs to.")] = None) -> None:
    """Create an account. Password: AAS_NEW_PASSWORD (automation) or prompted, never an argument."""
    import os

    from aas_core.db import session_scope
    from aas_core.services.auth import create_user

    c = ctx_of(ctx)
    password = os.environ.get("AAS_NEW_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise fail("no password: set AAS_NEW_PASSWORD or run in a terminal to be prompted")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope(c.url) as s:
            create_user(s, username, password, role, name=name, student_number=student, actor=CLI_ADMIN.username)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"user {username} ({role}) created")


