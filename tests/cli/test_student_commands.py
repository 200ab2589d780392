"""`aas enroll` (per-photo wording, exit code) and `aas student show [--json]`, through the real Typer
app in-process with the real models, on SQLite and MariaDB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from aas_core import cli

POWELL = "lfw_Colin_Powell"


def aas(url: str, tmp: Path, models_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(cli.app, ["--database-url", url, "--models-dir", str(models_dir), *args],
                           env={"AAS_DATA_DIR": str(tmp / "data")})
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r


def test_enroll_wording_exit_code_and_student_show(db_url: str, tmp_path: Path, models_dir: Path,
                                                   data_dir: Path) -> None:
    run = lambda *a: aas(db_url, tmp_path, models_dir, *a)  # noqa: E731
    assert run("init").exit_code == 0
    assert run("course", "add", "CS1", "--name", "Intro").exit_code == 0
    assert run("student", "add", "P1", "--name", "Colin", "--course", "CS1").exit_code == 0
    assert run("student", "add", "P2", "--name", "Other", "--course", "CS1").exit_code == 0
    src = data_dir / "faces_dev" / POWELL
    one, two = tmp_path / "one.jpg", tmp_path / "two.jpg"
    shutil.copy(src / "1.jpg", one)
    shutil.copy(src / "2.jpg", two)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 190, np.uint8)).save(blank)

    r = run("enroll", "P1", str(one), str(one), str(blank))
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "one.jpg: accepted" in lines
    assert any(x.startswith("one.jpg: rejected: duplicate: the same photo") for x in lines)
    assert "blank.png: rejected: no face found" in lines
    assert lines[-1] == "P1: 1 accepted, 0 held for review, 2 rejected"

    # P1's face enrolled as P2: held, nothing accepted -> non-zero exit
    r = run("enroll", "P2", str(two))
    assert r.exit_code != 0
    assert any(x.startswith("two.jpg: held for review: looks more like another enrolled student")
               for x in r.stdout.splitlines()), r.stdout

    shown = json.loads(run("student", "show", "P2", "--json").stdout)
    assert shown["student_number"] == "P2" and shown["name"] == "Other" and shown["courses"] == ["CS1"]
    assert shown["consent"]["given"] is True and shown["consent"]["given_at"]
    [sample] = shown["samples"]
    assert set(sample) >= {"id", "status", "reason", "source", "created_at", "model"}
    assert sample["status"] == "pending" and "another enrolled student" in sample["reason"]
    assert sample["source"] == "upload" and sample["model"]
    p1 = json.loads(run("student", "show", "P1", "--json").stdout)
    assert [x["status"] for x in p1["samples"]] == ["accepted"]

    text = run("student", "show", "P2").stdout
    assert "P2\tOther" in text and "consent: given" in text and "courses: CS1" in text
    assert f"#{sample['id']}\tpending\tupload" in text
    missing = run("student", "show", "NOPE")
    assert missing.exit_code != 0 and "no student with id 'NOPE'" in missing.stderr

    # the reviewer's side: list, a rejection needs a reason, a decided photo is no longer held
    sid = str(sample["id"])
    assert f"#{sid}\theld for review: looks more like another enrolled student" in run("student", "review", "P2").stdout
    assert run("student", "review", "P2", "--reject", sid).exit_code != 0
    r = run("student", "review", "P2", "--reject", sid, "--reason", "shows P1")
    assert r.exit_code == 0 and f"#{sid}: rejected" in r.stdout
    assert [x["status"] for x in json.loads(run("student", "show", "P2", "--json").stdout)["samples"]] == ["rejected"]
    again = run("student", "review", "P2", "--accept", sid)
    assert again.exit_code != 0 and "not held for review" in again.stderr
