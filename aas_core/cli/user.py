"""``aas user ...``: dashboard accounts from a shell (whoever runs the CLI on the server is an admin).

``add`` and ``passwd`` set a password the person chose (``AAS_NEW_PASSWORD`` or a hidden
prompt, never an argument: shell history, ``ps``). ``reset``, ``role``, ``link``, ``email``,
``disable``, ``enable`` and ``list`` go through ``services.accounts`` like the Accounts page
(the last active administrator stays, sessions end, everything audited). ``admin.register``
adds its own ``list``/``disable``/``enable`` only for names not taken here.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail

app = typer.Typer(help="Dashboard accounts.", no_args_is_help=True)


def _call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """A service call with its refusal as a one-line error (no traceback)."""
    from aas_core.services.auth import AccessDenied

    try:
        return fn(*args, **kwargs)
    except (ValueError, LookupError, AccessDenied) as exc:
        raise fail(str(exc)) from None


@app.command("add")
def user_add(ctx: typer.Context, username: str,
             role: Annotated[str, typer.Option("--role", help="admin | instructor | student")] = "instructor",
             name: Annotated[str | None, typer.Option("--name")] = None,
             student: Annotated[str | None, typer.Option("--student", help="Student id this account belongs to.")] = None,
             email: Annotated[str | None, typer.Option("--email", help="Links a first single sign-on (verified e-mail).")] = None,
             sso_only: Annotated[bool, typer.Option("--sso-only", help="No password: signs in only by single sign-on (needs --email).")] = False) -> None:
    """Create an account. Password: AAS_NEW_PASSWORD (automation) or prompted, never an argument."""
    from aas_core.db import session_scope
    from aas_core.services.auth import create_user

    c = ctx_of(ctx)
    password = None if sso_only else _new_password("Password")

    def work() -> None:
        with session_scope(c.url) as s:
            create_user(s, username, password, role, name=name, email=email, student_number=student,
                        actor=CLI_ADMIN.username)

    _call(work)
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

    def work() -> None:
        with session_scope(c.url) as s:
            set_password(s, username, password, actor=CLI_ADMIN.username)

    _call(work)
    typer.echo(f"password of {username} changed")


@app.command("reset")
def user_reset(ctx: typer.Context, username: str) -> None:
    """A temporary password (printed once, or AAS_NEW_PASSWORD) the user must replace at next sign-in."""
    import os

    from aas_core.services import accounts

    temp = _call(accounts.reset_password, ctx_of(ctx).url, CLI_ADMIN, username, os.environ.get("AAS_NEW_PASSWORD"))
    typer.echo(f"password of {username} reset; every session of it ended")
    if not os.environ.get("AAS_NEW_PASSWORD"):
        typer.echo(f"temporary password: {temp}")


@app.command("role")
def user_role(ctx: typer.Context, username: str, role: str,
              student: Annotated[str | None, typer.Option("--student", help="Student id (role student).")] = None) -> None:
    """Give an account another role (admin | instructor | student); its sessions end."""
    from aas_core.services import accounts

    _call(accounts.change_role, ctx_of(ctx).url, CLI_ADMIN, username, role, student_number=student)
    typer.echo(f"{username} is now {role}")


@app.command("link")
def user_link(ctx: typer.Context, username: str,
              student: Annotated[str | None, typer.Argument(help="Student id; leave out to unlink.")] = None) -> None:
    """Link a student account to its student record (no id: unlink)."""
    from aas_core.services import accounts

    _call(accounts.link_student, ctx_of(ctx).url, CLI_ADMIN, username, student)
    typer.echo(f"{username} linked to {student}" if student else f"{username} unlinked")


@app.command("email")
def user_email(ctx: typer.Context, username: str,
               email: Annotated[str | None, typer.Argument(help="Leave out to remove.")] = None) -> None:
    """Set the e-mail that links a first single sign-on (resets an existing provider link)."""
    from aas_core.services import accounts

    _call(accounts.set_email, ctx_of(ctx).url, CLI_ADMIN, username, email)
    typer.echo(f"e-mail of {username} {'set' if email else 'removed'}")


def _set_active(ctx: typer.Context, username: str, active: bool) -> None:
    from aas_core.services import accounts

    _call(accounts.set_active, ctx_of(ctx).url, CLI_ADMIN, username, active)
    typer.echo(f"user {username} {'enabled' if active else 'disabled'}")


@app.command("disable")
def user_disable(ctx: typer.Context, username: str) -> None:
    """Disable an account: it is signed out everywhere and cannot sign in; nothing is deleted."""
    _set_active(ctx, username, False)


@app.command("enable")
def user_enable(ctx: typer.Context, username: str) -> None:
    """Enable a disabled account again."""
    _set_active(ctx, username, True)


@app.command("list")
def user_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List accounts (never their hashes): name, role, active or disabled."""
    from aas_core.services import accounts

    rows = _call(accounts.list_accounts, ctx_of(ctx).url, CLI_ADMIN)
    if as_json:
        typer.echo(json.dumps([{"username": a.username, "role": a.role.value, "active": a.active, "email": a.email,
                                "must_change_password": a.must_change_password, "sso_linked": a.sso_linked,
                                "student": a.student_number} for a in rows]))
        return
    for a in rows:
        typer.echo(f"{a.username}\t{a.role.value}\t{'active' if a.active else 'disabled'}")
