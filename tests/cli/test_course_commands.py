"""`aas course config CODE [--set KEY=VALUE ...] [--json]` on SQLite and MariaDB, through the real
Typer app in-process (the subprocess path of the CLI is covered by tests/cli/test_session_commands.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from aas_core import cli
from aas_core.db import session_scope
from aas_core.db.models import AuditLog


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def aas(url: str, tmp: Path, *args: str) -> Result:
    r = CliRunner().invoke(cli.app, ["--database-url", url, *args], env={"AAS_DATA_DIR": str(tmp / "data")})
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


def test_show_set_and_refuse(db_url: str, tmp_path: Path) -> None:
    assert aas(db_url, tmp_path, "init").returncode == 0
    assert aas(db_url, tmp_path, "course", "add", "CS101", "--name", "Intro").returncode == 0
    shown = json.loads(aas(db_url, tmp_path, "course", "config", "CS101", "--json").stdout)
    assert shown["plan"]["snapshots"] == 3 and shown["rules"]["min_confidence"] == 0.0
    assert shown["recognition"]["threshold"] is None and shown["camera"] is None

    r = aas(db_url, tmp_path, "course", "config", "CS101", "--set", "plan.snapshots=5", "--set",
            "rules.min_confidence=0.5", "--set", "recognition.threshold=0.42", "--set", "camera=room101", "--json")
    assert r.returncode == 0, r.stderr
    new = json.loads(r.stdout)
    assert (new["plan"]["snapshots"], new["rules"]["min_confidence"]) == (5, 0.5)
    assert (new["recognition"]["threshold"], new["camera"]) == (0.42, "room101")
    again = json.loads(aas(db_url, tmp_path, "course", "config", "CS101", "--json").stdout)
    assert again == new  # stored, read back validated
    text = aas(db_url, tmp_path, "course", "config", "CS101").stdout
    assert "plan.snapshots\t5" in text and 'camera\t"room101"' in text

    # a bad key or value is refused with the field's message, and nothing is written
    bad_key = aas(db_url, tmp_path, "course", "config", "CS101", "--set", "plan.snapshot=4")
    assert bad_key.returncode != 0 and "unknown setting 'plan.snapshot'" in bad_key.stderr
    assert "plan.snapshots" in bad_key.stderr  # says what exists
    too_many = aas(db_url, tmp_path, "course", "config", "CS101", "--set", "plan.snapshots=11", "--set",
                   "rules.tolerate_gaps=2")
    assert too_many.returncode != 0 and "plan.snapshots" in too_many.stderr and "less than or equal to 10" in too_many.stderr
    no_room = aas(db_url, tmp_path, "course", "config", "CS101", "--set", "plan.session_length_s=1200")
    assert no_room.returncode != 0 and "no room for the last snapshot" in no_room.stderr
    not_status = aas(db_url, tmp_path, "course", "config", "CS101", "--set", "rules.middle_only=maybe")
    assert not_status.returncode != 0 and "rules.middle_only" in not_status.stderr
    no_eq = aas(db_url, tmp_path, "course", "config", "CS101", "--set", "plan.snapshots")
    assert no_eq.returncode != 0 and "KEY=VALUE" in no_eq.stderr
    assert json.loads(aas(db_url, tmp_path, "course", "config", "CS101", "--json").stdout) == new
    missing = aas(db_url, tmp_path, "course", "config", "NOPE")
    assert missing.returncode != 0 and "no course with code 'NOPE'" in missing.stderr

    # every change is audited with what changed
    with session_scope(db_url) as s:
        entries = [a for a in s.query(AuditLog).filter(AuditLog.action == "course.update")]
        assert len(entries) == 1
        assert set(entries[0].details["fields"]) == {"config.plan", "config.rules", "config.recognition",
                                                     "config.camera"}
