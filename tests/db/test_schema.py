"""Alembic migrations and the ORM on both SQLite and the real MariaDB."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import inspect, select

from aas_core.db import init_db, repo, session_scope
from aas_core.db.embeddings import from_blob, to_blob
from aas_core.db.engine import downgrade_db, get_engine
from aas_core.db.models import (
    AttendanceRecord,
    AuditLog,
    ClassSession,
    FaceObservation,
    FaceSample,
    Snapshot,
    SnapshotStatus,
)
from aas_core.domain.course_config import SessionPlan

TABLES = {"users", "instructors", "students", "courses", "enrollments", "face_samples", "sessions",
          "snapshots", "face_observations", "attendance_records", "audit_log", "alembic_version"}


def test_upgrade_creates_schema_and_downgrade_removes_it(db_url: str) -> None:
    init_db(db_url)
    assert TABLES <= set(inspect(get_engine(db_url)).get_table_names())
    init_db(db_url)  # idempotent
    downgrade_db(db_url, "base")
    left = set(inspect(get_engine(db_url)).get_table_names()) - {"alembic_version"}
    assert left == set()


def test_course_student_roster_and_gallery_roundtrip(migrated: str) -> None:
    url = migrated
    rng = np.random.default_rng(0)
    emb = rng.standard_normal(128).astype(np.float32)
    with session_scope(url) as s:
        c = repo.add_course(s, "CS101", "Intro to CS", schedule="Mon 09:00")
        st = repo.add_student(s, "S001", "Ada Lovelace", consent=True)
        assert repo.enroll_in_course(s, c, st)
        assert not repo.enroll_in_course(s, c, st)  # second time is a no-op
        s.add(FaceSample(student_id=st.id, image_path="samples/x.jpg", model_name="arcface:test",
                         embedding=to_blob(emb), face_px=80, blur=100.0, det_score=0.9))
        s.add(FaceSample(student_id=st.id, model_name="dlib:resnet_v1", embedding=to_blob(emb[:64])))
    with session_scope(url) as s:
        c = repo.get_course(s, "CS101")
        assert [x.student_number for x in repo.roster(s, c)] == ["S001"]
        ids, g = repo.gallery_arrays(s, c, "arcface:test")
        assert ids == ["S001"] and g.shape == (1, 128)
        np.testing.assert_array_equal(g[0], emb)  # bytes in == bytes out, no pickle
        ids2, _ = repo.gallery_arrays(s, c, "dlib:resnet_v1")
        assert ids2 == ["S001"]
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
        assert actions[:3] == ["course.create", "student.create", "roster.add"]


def test_duplicates_and_missing_give_clear_errors(migrated: str) -> None:
    with session_scope(migrated) as s:
        repo.add_course(s, "X1", "X")
    with pytest.raises(repo.AlreadyExists, match="already exists"):
        with session_scope(migrated) as s:
            repo.add_course(s, "X1", "again")
    with pytest.raises(repo.NotFound, match="aas course add NOPE"):
        with session_scope(migrated) as s:
            repo.get_course(s, "NOPE")


def test_session_snapshot_observation_attendance_cascade(migrated: str) -> None:
    url = migrated
    with session_scope(url) as s:
        c = repo.add_course(s, "C2", "Course 2")
        st = repo.add_student(s, "S9", "Bob", consent=True)
        repo.enroll_in_course(s, c, st)
        sess = ClassSession(course_id=c.id, capture_plan=SessionPlan(snapshots=3), seed=42)
        s.add(sess)
        s.flush()
        snap = Snapshot(session_id=sess.id, index=0, image_path="snapshots/a.jpg", status=SnapshotStatus.PROCESSED)
        s.add(snap)
        s.flush()
        s.add(FaceObservation(snapshot_id=snap.id, x1=1, y1=2, x2=30, y2=40, det_score=0.8, source="tile",
                              student_id=st.id, similarity=0.7, top_matches=[["S9", 0.7]],
                              embedding=to_blob(np.ones(4, np.float32))))
        rec = AttendanceRecord(session_id=sess.id, student_id=st.id, auto_status="late", final_status="late",
                               presence=[False, True, True])
        s.add(rec)
        sid = sess.id
    with session_scope(url) as s:
        rec = s.scalar(select(AttendanceRecord))
        repo.override_status(s, rec, "attended", actor="prof", reason="was at the back")
    with session_scope(url) as s:
        rec = s.scalar(select(AttendanceRecord))
        assert (rec.auto_status, rec.final_status, rec.overridden_by) == ("late", "attended", "prof")
        assert rec.presence == [False, True, True]
        obs = s.scalar(select(FaceObservation))
        assert obs.top_matches == [["S9", 0.7]] and from_blob(obs.embedding).tolist() == [1, 1, 1, 1]
        s.delete(s.get(ClassSession, sid))
    with session_scope(url) as s:  # ON DELETE CASCADE works on both databases
        assert s.scalar(select(Snapshot)) is None
        assert s.scalar(select(FaceObservation)) is None
        assert s.scalar(select(AttendanceRecord)) is None


def test_override_needs_valid_status_and_reason(migrated: str) -> None:
    with session_scope(migrated) as s:
        c = repo.add_course(s, "C3", "C3")
        st = repo.add_student(s, "S3", "C", consent=True)
        sess = ClassSession(course_id=c.id)
        s.add(sess)
        s.flush()
        rec = AttendanceRecord(session_id=sess.id, student_id=st.id, auto_status="absent", final_status="absent")
        s.add(rec)
        s.flush()
        with pytest.raises(ValueError):
            repo.override_status(s, rec, "vacation", "prof", "x")
        with pytest.raises(ValueError, match="reason"):
            repo.override_status(s, rec, "attended", "prof", "  ")


def test_embedding_blob_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        from_blob(b"abc")
    with pytest.raises(ValueError):
        to_blob(np.array([np.nan], np.float32))


def test_course_edits_from_two_tabs_do_not_overwrite_each_other(migrated: str) -> None:
    with session_scope(migrated) as s:
        c = repo.add_course(s, "T1", "Original")
        s.flush()
        v0 = c.version
    # both tabs loaded version v0; tab A saves first
    with session_scope(migrated) as s:
        repo.update_course(s, repo.get_course(s, "T1"), actor="a", expected_version=v0, name="From tab A")
    with pytest.raises(repo.StaleEdit, match="another tab"):
        with session_scope(migrated) as s:
            repo.update_course(s, repo.get_course(s, "T1"), actor="b", expected_version=v0, name="From tab B")
    with session_scope(migrated) as s:
        c = repo.get_course(s, "T1")
        assert c.name == "From tab A" and c.version == v0 + 1
        # a save that knows the current version goes through
        assert repo.update_course(s, c, actor="b", expected_version=c.version, room="B12") == ["room"]
    with pytest.raises(ValueError, match="not editable"):
        with session_scope(migrated) as s:
            repo.update_course(s, repo.get_course(s, "T1"), actor="x", code="HACK")


def test_migration_0004_moves_course_dicts_into_the_typed_config(db_url: str) -> None:
    """Courses saved by the old page ({"snapshots": 5}) and the old CLI/test shape ({"n": 3}) keep
    their settings; a session's plan becomes a SessionPlan; downgrade gives the dicts back."""
    import json

    from sqlalchemy import text

    from aas_core.db import init_db

    downgrade_db(db_url, "base")
    init_db(db_url)
    downgrade_db(db_url, "0003")
    eng = get_engine(db_url)
    with eng.begin() as c:
        c.execute(text("INSERT INTO courses (code, name, capture_plan, thresholds, rules, camera, created_at, version) "
                       "VALUES (:code, 'x', :plan, :thr, :rules, :cam, '2026-01-01 00:00:00', 1)"),
                  [{"code": "PAGE", "plan": json.dumps({"snapshots": 5, "first_after_s": 120.0,
                                                        "second_after_s": 900.0, "session_length_s": 3000.0}),
                    "thr": json.dumps({"recognition": 0.31, "model": "m", "source": "evaluation"}),
                    "rules": json.dumps({"min_confidence": 0.5}), "cam": json.dumps({"kind": "ipwebcam",
                                                                                     "name": "room1"})},
                   {"code": "CLI", "plan": json.dumps({"n": 4}), "thr": None, "rules": None, "cam": None}])
        cid = c.execute(text("SELECT id FROM courses WHERE code = 'CLI'")).scalar()
        c.execute(text("INSERT INTO sessions (course_id, started_at, status, capture_plan, unknown_faces) "
                       "VALUES (:cid, '2026-01-01 00:00:00', 'completed', :plan, 0)"),
                  {"cid": cid, "plan": json.dumps({"n": 3})})
    init_db(db_url)
    with session_scope(db_url) as s:
        page, cli = repo.get_course(s, "PAGE").config, repo.get_course(s, "CLI").config
        assert (page.plan.snapshots, page.plan.first_after_s, page.threshold, page.rules.min_confidence,
                page.camera) == (5, 120.0, 0.31, 0.5, "room1")
        assert cli.plan.snapshots == 4 and cli.threshold is None
        assert s.scalar(select(ClassSession)).capture_plan.snapshots == 3
    downgrade_db(db_url, "0003")
    with eng.begin() as c:
        plan, thr = c.execute(text("SELECT capture_plan, thresholds FROM courses WHERE code = 'PAGE'")).one()
    plan, thr = (json.loads(v) if isinstance(v, str) else v for v in (plan, thr))
    assert plan["snapshots"] == 5 and thr["recognition"] == 0.31
    init_db(db_url)
