"""Accounts: argon2 hashes only, no plaintext anywhere, and `aas user add` from a script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, select, text

from aas_core.db import session_scope
from aas_core.db.engine import get_engine
from aas_core.db.models import AuditLog, Role, User
from aas_core.services.auth import authenticate, create_user

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Tr0ub4dor&3-unique-marker"  # noqa: S105 - a password we then look for in the database


def _dump_table(url: str, table: str) -> str:
    with get_engine(url).connect() as c:
        return "\n".join(repr(tuple(r)) for r in c.execute(text(f"SELECT * FROM {table}")))


def test_passwords_are_argon2_and_never_stored_in_clear(migrated: str) -> None:
    with session_scope(migrated) as s:
        create_user(s, "head", SECRET, Role.ADMIN)
        create_user(s, "teacher", SECRET + "2", Role.INSTRUCTOR, name="T")
    with session_scope(migrated) as s:
        users = s.scalars(select(User)).all()
        assert all(u.password_hash.startswith("$argon2") for u in users)
        assert len({u.password_hash for u in users}) == 2
        assert authenticate(s, "head", SECRET) is not None
        assert authenticate(s, "head", SECRET + "x") is None  # wrong password
        assert authenticate(s, "nobody", SECRET) is None  # unknown user: same answer
        assert authenticate(s, "teacher", SECRET) is None
    # no plaintext anywhere: users table, and every other table (audit details included)
    eng = get_engine(migrated)
    for table in inspect(eng).get_table_names():
        assert SECRET not in _dump_table(migrated, table), f"password found in {table}"


def test_same_password_gives_different_hashes_and_short_ones_are_refused(migrated: str) -> None:
    import pytest

    with session_scope(migrated) as s:
        a = create_user(s, "a1", SECRET, Role.ADMIN)
        b = create_user(s, "b1", SECRET, Role.ADMIN)
        assert a.password_hash != b.password_hash  # salted
        with pytest.raises(ValueError, match="at least"):
            create_user(s, "c1", "short", Role.ADMIN)


def test_inactive_user_cannot_sign_in(migrated: str) -> None:
    with session_scope(migrated) as s:
        create_user(s, "gone", SECRET, Role.INSTRUCTOR)
    with session_scope(migrated) as s:
        s.scalar(select(User).where(User.username == "gone")).is_active = False
    with session_scope(migrated) as s:
        assert authenticate(s, "gone", SECRET) is None


def _cli(url: str, *args: str, password: str | None, tty: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AAS_NEW_PASSWORD", "AAS_ADMIN_PASSWORD")}
    if password is not None:
        env["AAS_NEW_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "aas_core.cli", "--database-url", url, *args],
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def test_cli_user_add_with_env_password(migrated: str) -> None:
    r = _cli(migrated, "user", "add", "principal", "--role", "admin", password=SECRET)
    assert r.returncode == 0, r.stderr
    assert "principal" in r.stdout and SECRET not in r.stdout + r.stderr
    with session_scope(migrated) as s:
        u = s.scalar(select(User).where(User.username == "principal"))
        assert u is not None and u.role == Role.ADMIN and u.password_hash.startswith("$argon2")
        assert authenticate(s, "principal", SECRET) is not None
        assert s.scalar(select(AuditLog).where(AuditLog.action == "user.create")).target_id == "principal"
    assert SECRET not in _dump_table(migrated, "users")


def test_cli_user_add_without_password_and_tty_fails_clearly(migrated: str) -> None:
    r = _cli(migrated, "user", "add", "principal", "--role", "admin", password=None)
    assert r.returncode != 0
    assert "no password" in r.stderr and "AAS_NEW_PASSWORD" in r.stderr
    assert "Traceback" not in r.stderr
    with session_scope(migrated) as s:
        assert s.scalar(select(User).where(User.username == "principal")) is None


def test_cli_user_add_refuses_a_short_password(migrated: str) -> None:
    r = _cli(migrated, "user", "add", "principal", "--role", "admin", password="abc")
    assert r.returncode != 0 and "at least" in r.stderr and "Traceback" not in r.stderr
