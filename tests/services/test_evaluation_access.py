"""Evaluation from the dashboard: warnings when too few pairs stand behind a figure, clear reasons
for unusable folders, server folders for admins only, safe unpacking of instructors' zips."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from aas_core.db.models import Role
from aas_core.services import evaluation
from aas_core.services.auth import AccessDenied, AuthUser
from aas_core.tools.evaluation import evaluate_folder, trust_notes

ADMIN = AuthUser(0, "admin", Role.ADMIN)
TEACH = AuthUser(1, "teach", Role.INSTRUCTOR, instructor_id=1)
STUDENT = AuthUser(2, "stud", Role.STUDENT, student_number="S1")


def test_trust_notes_follow_the_rule_of_three() -> None:
    notes = trust_notes(44, 176)
    assert len(notes) == 3
    assert "Only 44 genuine pairs" in notes[0]
    assert "needs 300" in notes[1] and "under 1.7%" in notes[1]
    assert "needs 3,000" in notes[2]
    assert trust_notes(500, 3000) == []
    assert len(trust_notes(500, 1000)) == 1  # enough for FAR 1e-2, not for 1e-3


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_unpacking_refuses_unsafe_or_odd_zips(tmp_path: Path) -> None:
    jpg = b"\xff\xd8\xff" + b"0" * 100
    assert evaluation.unpack_labelled_zip(_zip({"ann/1.jpg": jpg, "bob/1.jpg": jpg}), tmp_path / "a") == 2
    assert (tmp_path / "a" / "ann" / "1.jpg").read_bytes() == jpg
    # one common top folder is fine ("faces/<identity>/x.jpg")
    assert evaluation.unpack_labelled_zip(_zip({"faces/ann/1.jpg": jpg}), tmp_path / "b") == 1
    assert (tmp_path / "b" / "ann" / "1.jpg").exists()
    for entries, message in [({"../evil/1.jpg": jpg}, "unsafe name"), ({"/etc/x.jpg": jpg}, "unsafe name"),
                             ({"ann/run.sh": b"#!"}, "not a photo"), ({"1.jpg": jpg}, "folder named after"),
                             ({}, "no photos")]:
        with pytest.raises(ValueError, match=message):
            evaluation.unpack_labelled_zip(_zip(entries), tmp_path / "c")
    with pytest.raises(ValueError, match="not a zip"):
        evaluation.unpack_labelled_zip(b"PK-not-really", tmp_path / "d")
    assert not (tmp_path / "evil").exists()


def test_a_zip_bomb_stops_at_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "MAX_ZIP_BYTES", 3 * 2**20)
    big = b"\0" * (2 * 2**20)  # compresses to almost nothing
    with pytest.raises(ValueError, match="unpacks to more than 3 MB"):
        evaluation.unpack_labelled_zip(_zip({"a/1.jpg": big, "b/1.jpg": big}), tmp_path / "x")


def test_server_folders_for_admins_only_and_uploads_for_staff(tmp_path: Path, models_dir: Path) -> None:
    calls = []

    def fake_run(folder: Path, backend: str, mdir: Path, **kw):  # type: ignore[no-untyped-def]
        calls.append(sorted(p.name for p in folder.iterdir()))
        return "report"

    for who in (TEACH, STUDENT):
        with pytest.raises(AccessDenied):
            evaluation.evaluate_server_folder(who, tmp_path, "arcface", models_dir, run=fake_run)
    assert evaluation.evaluate_server_folder(ADMIN, tmp_path, "arcface", models_dir, run=fake_run) == "report"
    with pytest.raises(ValueError, match="not a folder"):
        evaluation.evaluate_server_folder(ADMIN, tmp_path / "nope", "arcface", models_dir, run=fake_run)
    data = _zip({"ann/1.jpg": b"x", "bob/2.jpg": b"y"})
    with pytest.raises(AccessDenied):
        evaluation.evaluate_upload(STUDENT, data, "arcface", models_dir, run=fake_run)
    assert evaluation.evaluate_upload(TEACH, data, "arcface", models_dir, run=fake_run) == "report"
    assert calls[-1] == ["ann", "bob"]


def test_folders_without_a_usable_identity_say_why(tmp_path: Path, models_dir: Path, data_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no <identity>/<photo> sub-folders"):
        evaluate_folder(tmp_path / "empty", "arcface", models_dir)
    few = tmp_path / "few"
    for d in sorted(p for p in (data_dir / "faces_dev").iterdir() if p.is_dir())[:3]:
        shutil.copytree(d, few / d.name, ignore=lambda _d, names: sorted(names)[2:])
    with pytest.raises(ValueError, match="identities need more than 5 photo"):
        evaluate_folder(few, "arcface", models_dir, enroll_k=5, stranger_fraction=0.0)
    noface = tmp_path / "noface" / "ann"
    noface.mkdir(parents=True)
    import cv2
    import numpy as np

    for k in range(3):
        cv2.imwrite(str(noface / f"{k}.jpg"), np.full((120, 120, 3), 128, np.uint8))
    with pytest.raises(ValueError, match="no usable identity: no face was found"):
        evaluate_folder(tmp_path / "noface", "arcface", models_dir, enroll_k=2, stranger_fraction=0.0)
