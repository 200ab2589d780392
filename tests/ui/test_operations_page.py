"""The Operations page (admins): today's sessions, sessions awaiting review, queued and failed
snapshots, and the broker's state, as `aas status --json` reports them (one service call)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aas_core.db import session_scope
from aas_core.db.models import AttendanceRecord, ClassSession, Course, SessionStatus, Snapshot, SnapshotStatus, Student
from aas_core.domain.course_config import SessionPlan
from tests.capture.fake_camera import closed_port
from tests.ui.test_pages_apptest import _clear_caches, _url, make_user, ok, page, texts


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path) -> Iterator[None]:
    monkeypatch.setenv("AAS_DATABASE_URL", _url(tmp_path))
    monkeypatch.setenv("AAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AAS_MODELS_DIR", str(models_dir))
    monkeypatch.delenv("AAS_BROKER_URL", raising=False)
    _clear_caches()
    yield
    _clear_caches()


def _a_day_of_sessions(url: str) -> tuple[int, int]:
    """A running session (one snapshot processed, one waiting, one missing) and a completed one
    with two students left to review (one already overridden)."""
    with session_scope(url) as s:
        course = Course(code="OPS1", name="Operations course")
        s.add(course)
        studs = [Student(student_number=f"S{k}", name=f"Student {k}") for k in range(3)]
        s.add_all(studs)
        s.flush()
        running = ClassSession(course_id=course.id, status=SessionStatus.RUNNING, camera_name="room7",
                               capture_plan=SessionPlan.for_camera([0, 600, 1200], "room7"))
        done = ClassSession(course_id=course.id, status=SessionStatus.COMPLETED, camera_name="upload",
                            capture_plan=SessionPlan.for_images(3))
        s.add_all([running, done])
        s.flush()
        s.add_all([Snapshot(session_id=running.id, index=0, status=SnapshotStatus.PROCESSED),
                   Snapshot(session_id=running.id, index=1, status=SnapshotStatus.CAPTURED),
                   Snapshot(session_id=running.id, index=2, status=SnapshotStatus.MISSING, error="camera down")])
        for k, (reasons, by) in enumerate([(["could not tell in snapshot 2"], None), (["seat only"], None),
                                           (["seat only"], "teach")]):
            s.add(AttendanceRecord(session_id=done.id, student_id=studs[k].id, auto_status="absent",
                                   final_status="absent", review_reasons=reasons, overridden_by=by))
        s.add(AttendanceRecord(session_id=running.id, student_id=studs[0].id, auto_status="attended",
                               final_status="attended", review_reasons=None))
        return running.id, done.id


def test_operations_page_shows_the_facts_of_aas_status(tmp_path: Path) -> None:
    url = _url(tmp_path)
    admin = make_user(url, "admin", "admin")
    running, done = _a_day_of_sessions(url)
    at = ok(page("operations.py", admin).run())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Sessions today": "2", "Sessions awaiting review": "1",
                       "Snapshots waiting for processing": "1", "Snapshots failed or missing today": "1"}
    text = texts(at)
    assert "No broker configured" in text and "room7" in text and "OPS1" in text
    review = at.dataframe[-1].value
    assert list(review["Session"]) == [done] and list(review["Students to review"]) == [2]
    # the CLI reports the same facts
    from aas_core import cli

    r = CliRunner().invoke(cli.app, ["--database-url", url, "status", "--json"])
    assert r.exit_code == 0, r.output
    facts = json.loads(r.stdout)
    assert [x["session_id"] for x in facts["sessions_today"]] == [running, done]
    assert facts["sessions_today"][0]["snapshots"] == {"captured": 1, "processed": 1, "missing": 1, "failed": 0}
    assert facts["awaiting_review"] == [{"session_id": done, "course": "OPS1",
                                         "started_at": facts["awaiting_review"][0]["started_at"], "students": 2}]
    assert facts["snapshots"]["queued"] == 1 and facts["snapshots"]["missing_today"] == 1
    assert facts["broker"] is None and facts["cameras"] == [] and facts["meetings_today"] == []


def test_operations_page_says_when_the_broker_is_down_and_is_for_admins_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _url(tmp_path)
    admin, teacher = make_user(url, "admin", "admin"), make_user(url, "teach", "instructor")
    monkeypatch.setenv("AAS_BROKER_URL", f"amqp://guest:s3cret@127.0.0.1:{closed_port()}//")
    _clear_caches()
    at = ok(page("operations.py", admin).run())
    shown = texts(at)
    assert "is not reachable" in " ".join(e.value for e in at.error)
    assert "s3cret" not in shown and "guest:***@127.0.0.1" in shown
    at = ok(page("operations.py", teacher).run())
    assert [e.value for e in at.error] == ["Operations is for administrators."]
    assert not at.metric and not at.dataframe
