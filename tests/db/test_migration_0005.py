"""Migration 0005 (face sample review status and hashes) on SQLite and the real MariaDB."""

from __future__ import annotations

from sqlalchemy import text

from aas_core.db import init_db, session_scope
from aas_core.db.engine import downgrade_db, get_engine
from aas_core.db.models import FaceSample, SampleStatus


def test_existing_samples_become_accepted_and_downgrade_keeps_them(db_url: str) -> None:
    init_db(db_url)
    downgrade_db(db_url, "0004")
    with get_engine(db_url).begin() as c:
        c.execute(text("INSERT INTO students (student_number, name, created_at) VALUES ('S1', 'x', '2026-01-01')"))
        sid = c.execute(text("SELECT id FROM students")).scalar()
        for acc in (True, False):
            c.execute(text("INSERT INTO face_samples (student_id, source, accepted, created_at) "
                           "VALUES (:s, 'upload', :a, '2026-01-01')"), {"s": sid, "a": acc})
    init_db(db_url)
    with session_scope(db_url) as s:
        got = [(x.accepted, x.status, x.content_sha256, x.phash) for x in s.query(FaceSample).order_by(FaceSample.id)]
    assert got == [(True, SampleStatus.ACCEPTED, None, None), (False, SampleStatus.REJECTED, None, None)]
    downgrade_db(db_url, "0004")  # the rows survive the way back (no table copy, no cascade)
    with get_engine(db_url).begin() as c:
        assert c.execute(text("SELECT COUNT(*) FROM face_samples")).scalar() == 2
    init_db(db_url)
