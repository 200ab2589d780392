"""The admin CLI commands (aas_core/cli/admin.py), registered on the real ``aas`` app.

Commands run in-process through Typer's CliRunner (fast) on both databases; one test runs
``python -c ... cli.app()`` in a subprocess to prove the wiring works in a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from trust_world import PASSWORD, World, all_files, record_count

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import AuditLog, User
from aas_core.services.auth import authenticate

ROOT = Path(__file__).resolve().parents[2]
# The real `aas` app with the admin commands registered exactly as the lead will wire them.
BOOT = ("from aas_core import cli; from aas_core.cli.admin import register; "
        "register(cli.app, user_app=cli.user.app, student_app=cli.student.app); cli.app()")


def aas_subprocess(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAS_")}
    env["AAS_DATA_DIR"] = str(world.store.root)
    return subprocess.run([sys.executable, "-c", BOOT, "--database-url", world.url, *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


@pytest.fixture
def aas(world: World, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run ``aas --database-url <world> ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from aas_core import cli
    from aas_core.cli.admin import register

    register(cli.app, user_app=cli.user.app, student_app=cli.student.app)
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(data_dir=world.store.root))
    runner = CliRunner()

    def run(*args: str, password: str | None = None) -> Result:
        env = {"AAS_NEW_PASSWORD": password} if password else None
        if password is None:
            monkeypatch.delenv("AAS_NEW_PASSWORD", raising=False)
        r = runner.invoke(cli.app, ["--database-url", world.url, *args], env=env)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Result(r.exit_code, r.stdout, r.stderr)

    return run


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def test_purge_export_erase_from_the_cli(world: World, aas, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = aas("purge", "--days", "30", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["sessions"] == 1 and out["snapshot_files"] == 1 and out["crop_files"] == 4
    assert world.snapshot_files[world.sessions["A_old"]] not in all_files(world.store)

    csv_path = tmp_path / "a101.csv"
    r = aas("export", "A101", "--out", str(csv_path))
    assert r.returncode == 0, r.stderr
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("course,session_id") and len(lines) == 1 + 4

    r = aas("student", "erase", "S3")
    assert r.returncode != 0 and "--yes" in r.stderr
    r = aas("student", "erase", "S3", "--yes")
    assert r.returncode == 0, r.stderr
    assert not all_files(world.store) & world.files_of["S3"] and record_count(world.url, "S3") == 0
    r = aas("student", "erase", "S9", "--yes")
    assert r.returncode == 1 and "no student with id 'S9'" in r.stderr and "Traceback" not in r.stderr
    with session_scope(world.url) as s:
        actions = [a.action for a in s.scalars(select(AuditLog).where(AuditLog.actor == "cli"))]
    assert {"media.purge", "media.sweep", "export", "student.erase"} <= set(actions)


def test_consent_withdraw_and_accounts_from_the_cli(world: World, aas) -> None:  # type: ignore[no-untyped-def]
    r = aas("student", "withdraw", "S1")
    assert r.returncode == 0 and "samples 2" in r.stdout, r.stderr
    assert not all_files(world.store) & world.files_of["S1"]
    r = aas("student", "consent", "S1")
    assert r.returncode == 0, r.stderr
    with session_scope(world.url) as s:
        assert repo.get_student(s, "S1").has_consent

    r = aas("user", "list")
    assert r.returncode == 0 and "alice\tinstructor\tactive" in r.stdout and "$argon2" not in r.stdout
    assert aas("user", "disable", "alice").returncode == 0
    with session_scope(world.url) as s:
        assert authenticate(s, "alice", PASSWORD) is None
    assert aas("user", "enable", "alice").returncode == 0
    r = aas("user", "passwd", "alice")
    assert r.returncode != 0 and "AAS_NEW_PASSWORD" in r.stderr
    r = aas("user", "passwd", "alice", password="a brand new secret")
    assert r.returncode == 0, r.stderr
    with session_scope(world.url) as s:
        assert authenticate(s, "alice", "a brand new secret") is not None
        assert authenticate(s, "alice", PASSWORD) is None
        assert s.scalar(select(User).where(User.username == "alice")).password_hash.startswith("$argon2")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_health_from_the_cli(world: World, aas, models_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = aas("--models-dir", str(tmp_path), "health", "--json")  # an empty models dir
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["profile:offline"] is None and "missing" in report["profile:fast"]
    r = aas("--models-dir", str(models_dir), "health")
    assert r.returncode == 0 and "ok Recognition, fast profile" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_admin_commands_in_a_real_process(world: World) -> None:
    r = aas_subprocess(world, "purge", "--days", "30", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["snapshot_files"] == 1
    r = aas_subprocess(world, "student", "erase", "S9", "--yes")
    assert r.returncode == 1 and "no student with id 'S9'" in r.stderr and "Traceback" not in r.stderr
