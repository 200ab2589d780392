"""``aas user add`` and ``aas user passwd`` (list, disable, enable come with the admin commands).

``passwd`` is defined here so that it goes through ``services.auth.set_password`` (the password
policy with the username known); ``admin.register`` adds its commands only for names not taken.
"""

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
    from aas_core.db import session_scope
    from aas_core.services.auth import create_user

    c = ctx_of(ctx)
    password = _new_password("Password")
    try:
        with session_scope(c.url) as s:
            create_user(s, username, password, role, name=name, student_number=student, actor=CLI_ADMIN.username)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"user {username} ({role}) created")


def _new_password(prompt: str) -> str:
    """From AAS_NEW_PASSWORD (automation) or a hidden prompt; never an argument (shell history, ps)."""
    import os

    password = os.environ.get("AAS_NEW_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise fail("no password: set AAS_NEW_PASSWORD or run in a terminal to be prompted")
        password = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
    return password


@app.command("passwd")
def user_passwd(ctx: typer.Context, username: str) -> None:
    """Set a new password. Password: AAS_NEW_PASSWORD (automation) or prompted, never an argument."""
    from aas_core.db import session_scope
    from aas_core.services.auth import set_password

    c = ctx_of(ctx)
    password = _new_password("New password")
    try:
        with session_scope(c.url) as s:
            set_password(s, username, password, actor=CLI_ADMIN.username)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"password of {username} changed")
