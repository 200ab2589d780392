"""Admin commands for the ``aas`` CLI: retention purge, consent, erasure, export, health, accounts.

Registered on the main Typer app by :func:`register` (in ``aas_core/cli/__init__.py``).

Commands (all audited with actor ``cli``; whoever can run the CLI on the server is an admin):

* ``aas purge [--days N] [--orphans/--no-orphans] [--dry-run] [--json]``
* ``aas export COURSE [--out FILE]``            attendance CSV (stdout without --out)
* ``aas health [--json]``                        which features work with the models present
* ``aas student consent SID`` / ``aas student withdraw SID`` / ``aas student erase SID --yes``
* ``aas user list`` / ``aas user disable NAME`` / ``aas user enable NAME``

Settings come from the root callback's context object (``ctx.obj.settings``, as set by
``aas_core.cli.root``), so ``--database-url`` and ``--models-dir`` work as for every command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aas_core.config import Settings
from aas_core.cli.common import CLI_ADMIN, Ctx, ctx_of, fail, store

def _settings(ctx: typer.Context) -> Settings:
    return ctx_of(ctx).settings


def _store(s: Settings):  # type: ignore[no-untyped-def]
    return store(Ctx(s))


_fail = fail


def _run(ctx: typer.Context, fn: Any) -> Any:
    """Run ``fn(session, settings)`` in one transaction with retries on a lost connection; clear errors."""
    from aas_core.db import session_scope
    from aas_core.db.retry import retry_db
    from aas_core.services.auth import AccessDenied

    s = _settings(ctx)

    def unit() -> Any:
        with session_scope(s.database_url) as session:
            return fn(session, s)

    try:
        return retry_db(unit, attempts=3, delay=1.0)
    except (LookupError, ValueError, AccessDenied) as exc:
        raise _fail(str(exc)) from None


# --- retention / privacy ------------------------------------------------------------------------

def purge(ctx: typer.Context,
          days: Annotated[int | None, typer.Option("--days", help="Older than this many days (default: AAS_RETENTION_DAYS).")] = None,
          orphans: Annotated[bool, typer.Option("--orphans/--no-orphans", help="Also delete image files no row refers to.")] = True,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count; delete nothing.")] = False,
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Delete snapshot images and face crops of sessions older than N days (attendance stays)."""
    from sqlalchemy import select

    from aas_core.db.models import ClassSession
    from aas_core.services import privacy

    def work(session, s: Settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        n = s.retention_days if days is None else days
        store = _store(s)
        if dry_run:
            from datetime import timedelta

            from aas_core.db.models import utcnow

            old = session.scalars(select(ClassSession.id).where(
                ClassSession.started_at < utcnow() - timedelta(days=n))).all()
            out: dict[str, Any] = {"days": n, "dry_run": True, "sessions": len(old)}
        else:
            out = {"days": n, **privacy.purge_old_media(session, store, CLI_ADMIN, n)}
        if orphans:
            out["orphan_files"] = len(privacy.sweep_orphan_files(session, store, CLI_ADMIN, dry_run=dry_run))
        return out

    result = _run(ctx, work)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(", ".join(f"{k} {v}" for k, v in result.items()))


def export(ctx: typer.Context, course: str,
           out: Annotated[Path | None, typer.Option("--out", help="CSV file to write (default: stdout).")] = None) -> None:
    """Attendance of a course as CSV (audited as an export)."""
    from aas_core.services import privacy

    rows = _run(ctx, lambda session, s: privacy.export_attendance(session, CLI_ADMIN, course))
    text = privacy.export_csv(rows)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"{len(rows)} rows written to {out}", err=True)


def health(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Which features work with the model files present, and why the others do not."""
    from aas_core.tools.health import FEATURE_LABELS, feature_availability

    s = _settings(ctx)
    report = feature_availability(s.resolved(s.models_dir))
    if as_json:
        typer.echo(json.dumps(report))
        return
    for key, why in report.items():
        mark = "ok " if why is None else "-- "
        typer.echo(f"{mark}{FEATURE_LABELS.get(key, key)}" + ("" if why is None else f": {why}"))


def student_consent(ctx: typer.Context, sid: str) -> None:
    """Record that a student consented to face enrollment."""
    from aas_core.services import privacy

    _run(ctx, lambda session, s: privacy.give_consent(session, CLI_ADMIN, sid))
    typer.echo(f"consent recorded for {sid}")


def student_withdraw(ctx: typer.Context, sid: str) -> None:
    """Withdraw consent: delete the student's face samples, embeddings and face crops (attendance stays)."""
    from aas_core.services import privacy

    counts = _run(ctx, lambda session, s: privacy.withdraw_consent(session, _store(s), CLI_ADMIN, sid))
    typer.echo(f"consent withdrawn for {sid}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def student_erase(ctx: typer.Context, sid: str,
                  yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False) -> None:
    """Erase a student: the row, every image and embedding, attendance records, their account."""
    from aas_core.services import privacy

    if not yes:
        raise _fail(f"erasing {sid} cannot be undone; repeat with --yes")

    def work(session, s: Settings) -> dict[str, int]:  # type: ignore[no-untyped-def]
        counts = privacy.erase_student(session, _store(s), CLI_ADMIN, sid)
        # Files a killed process was writing (an enrollment of this student, say) have no row
        # erase_student could find: the journal of files in flight names them.
        orphans = privacy.sweep_orphan_files(session, _store(s), CLI_ADMIN, journal_only=True)
        return {**counts, **({"orphan_files": len(orphans)} if orphans else {})}

    counts = _run(ctx, work)
    typer.echo(f"student {sid} erased: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def sweep_at_startup(settings: Settings) -> int:
    """Delete the files of crashed writers that no row refers to (the store's pending journal),
    at startup (``aas init``): a ``kill -9`` mid-write must not leave biometric files until the
    next ``aas purge``. Returns how many files went. Cheap when the journal is empty."""
    from aas_core.db import session_scope
    from aas_core.services import privacy

    store = _store(settings)
    if not store.pending_entries():
        return 0
    with session_scope(settings.database_url) as session:
        return len(privacy.sweep_orphan_files(session, store, CLI_ADMIN, journal_only=True))


# --- accounts -------------------------------------------------------------------------------------

def user_list(ctx: typer.Context) -> None:
    """List accounts (never their hashes)."""
    from sqlalchemy import select

    from aas_core.db.models import User

    rows = _run(ctx, lambda session, s: [(u.username, u.role.value, u.is_active)
                                         for u in session.scalars(select(User).order_by(User.username))])
    for name, role, active in rows:
        typer.echo(f"{name}\t{role}\t{'active' if active else 'disabled'}")


def _set_active(ctx: typer.Context, username: str, active: bool) -> None:
    from sqlalchemy import select

    from aas_core.db import repo
    from aas_core.db.models import User

    def work(session, s: Settings) -> None:  # type: ignore[no-untyped-def]
        u = session.scalar(select(User).where(User.username == username))
        if u is None:
            raise repo.NotFound(f"no user {username!r}")
        u.is_active = active
        repo.audit(session, CLI_ADMIN.username, "user.enable" if active else "user.disable", "user", username)

    _run(ctx, work)
    typer.echo(f"user {username} {'enabled' if active else 'disabled'}")


def user_disable(ctx: typer.Context, username: str) -> None:
    """Disable an account (it can no longer sign in; nothing is deleted)."""
    _set_active(ctx, username, False)


def user_enable(ctx: typer.Context, username: str) -> None:
    """Enable a disabled account again."""
    _set_active(ctx, username, True)


# --- registration ---------------------------------------------------------------------------------

def _names(app: typer.Typer) -> set[str]:
    return {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}


def register(app: typer.Typer, *, user_app: typer.Typer | None = None, student_app: typer.Typer | None = None) -> None:
    """Add the admin commands to the ``aas`` app (and its ``user``/``student`` groups). Idempotent."""
    for name, fn in (("purge", purge), ("export", export), ("health", health)):
        if name not in _names(app):
            app.command(name)(fn)
    if student_app is not None:
        for name, fn in (("consent", student_consent), ("withdraw", student_withdraw), ("erase", student_erase)):
            if name not in _names(student_app):
                student_app.command(name)(fn)
    if user_app is not None:
        # `aas user passwd` lives in aas_core.cli.user (it applies the password policy with the username)
        for name, fn in (("list", user_list), ("disable", user_disable), ("enable", user_enable)):
            if name not in _names(user_app):
                user_app.command(name)(fn)
