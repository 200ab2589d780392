"""Migration 0006 (face quality per observation, review reasons per record) on SQLite and the real MariaDB."""

from __future__ import annotations

from sqlalchemy import inspect, text

from aas_core.db import init_db, session_scope
from aas_core.db.engine import downgrade_db, get_engine
from aas_core.db.models import AttendanceRecord, FaceObservation


def _columns(url: str, table: str) -> set[str]:
    return {c["name"] for c in inspect(get_engine(url)).get_columns(table)}


def test_rows_before_0006_have_no_quality_and_survive_the_way_back(db_url: str) -> None:
    init_db(db_url)
    downgrade_db(db_url, "0005")
    assert "quality" not in _columns(db_url, "face_observations")
    assert "review_reasons" not in _columns(db_url, "attendance_records")
    with get_engine(db_url).begin() as c:
        c.execute(text("INSERT INTO students (student_number, name, created_at) VALUES ('S1', 'x', '2026-01-01')"))
        c.execute(text("INSERT INTO courses (code, name, config, created_at, version) "
                       "VALUES ('C1', 'c', '{}', '2026-01-01', 1)"))
        c.execute(text("INSERT INTO sessions (course_id, started_at, status, unknown_faces) "
                       "SELECT id, '2026-01-01', 'completed', 0 FROM courses"))
        # backticks: "index" is a reserved word; SQLite accepts MySQL's quoting
        c.execute(text("INSERT INTO snapshots (session_id, `index`, light_used, status) "
                       "SELECT id, 0, 0, 'processed' FROM sessions"))
        c.execute(text("INSERT INTO face_observations (snapshot_id, x1, y1, x2, y2, det_score) "
                       "SELECT id, 0, 0, 10, 10, 0.9 FROM snapshots"))
        c.execute(text("INSERT INTO attendance_records (session_id, student_id, auto_status, final_status, updated_at) "
                       "SELECT s.id, st.id, 'absent', 'absent', '2026-01-01' FROM sessions s, students st"))
    init_db(db_url)
    with session_scope(db_url) as s:
        [o] = s.query(FaceObservation).all()
        [r] = s.query(AttendanceRecord).all()
        assert (o.quality, o.quality_figures, r.review_reasons) == (None, None, None)
        o.quality, o.quality_figures, r.review_reasons = 0.31, {"face_px": 10.0}, ["could not tell in snapshot 1"]
    with session_scope(db_url) as s:
        assert s.query(FaceObservation).one().quality_figures == {"face_px": 10.0}
        assert s.query(AttendanceRecord).one().review_reasons == ["could not tell in snapshot 1"]
    downgrade_db(db_url, "0005")  # the rows survive the way back (plain DROP COLUMN, no table copy)
    with get_engine(db_url).begin() as c:
        assert c.execute(text("SELECT COUNT(*) FROM face_observations")).scalar() == 1
        assert c.execute(text("SELECT COUNT(*) FROM attendance_records")).scalar() == 1
    init_db(db_url)
    assert {"quality", "quality_figures"} <= _columns(db_url, "face_observations")
