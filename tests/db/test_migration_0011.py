"""Migration 0011 (self check-in, e-mail notices) on SQLite and the real MariaDB: up, down, up,
rows of the tables before it untouched, and the migrated tables exactly what the ORM declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from aas_core.db import init_db, session_scope
from aas_core.db.engine import downgrade_db, get_engine
from aas_core.db.models import Base, CheckIn, CheckInWindow, NoticeOptOut, utcnow

NEW = {"checkin_windows", "check_ins", "checkin_attempts", "notice_optouts", "notices_sent"}


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names())


def test_0011_up_down_up_keeps_older_rows_and_matches_the_models(db_url: str) -> None:
    init_db(db_url)
    assert NEW <= _tables(db_url)
    # The migrated tables are what the ORM declares (columns, types, nullability, indexes, FKs).
    with get_engine(db_url).connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
    mine = [d for d in diffs if any(t in repr(d) for t in NEW)]
    assert mine == [], mine

    downgrade_db(db_url, "0006")
    assert not (NEW & _tables(db_url))
    with get_engine(db_url).begin() as c:
        c.execute(text("INSERT INTO students (student_number, name, created_at) VALUES ('S1', 'x', '2026-01-01')"))
        c.execute(text("INSERT INTO courses (code, name, config, created_at, version) "
                       "VALUES ('C1', 'c', '{}', '2026-01-01', 1)"))
        c.execute(text("INSERT INTO sessions (course_id, started_at, status, unknown_faces) "
                       "SELECT id, '2026-01-01', 'running', 0 FROM courses"))
    init_db(db_url)
    with session_scope(db_url) as s:
        sid = s.execute(text("SELECT id FROM sessions")).scalar_one()
        st = s.execute(text("SELECT id FROM students")).scalar_one()
        w = CheckInWindow(session_id=sid, snapshot_index=0, opened_by="alice", closes_at=utcnow(), nonce="ab" * 16)
        s.add(w)
        s.flush()
        s.add(CheckIn(window_id=w.id, session_id=sid, student_id=st, snapshot_index=0, similarity=0.7, threshold=0.52))
        s.add(NoticeOptOut(student_id=st, kind="at_risk", source="cli"))
    # Deleting the student takes their check-ins and opt-outs with them (FK cascade, both databases).
    with get_engine(db_url).begin() as c:
        c.execute(text("DELETE FROM students"))
        assert c.execute(text("SELECT COUNT(*) FROM check_ins")).scalar() == 0
        assert c.execute(text("SELECT COUNT(*) FROM notice_optouts")).scalar() == 0
        assert c.execute(text("SELECT COUNT(*) FROM checkin_windows")).scalar() == 1
        c.execute(text("DELETE FROM sessions"))
        assert c.execute(text("SELECT COUNT(*) FROM checkin_windows")).scalar() == 0
    downgrade_db(db_url, "0006")
    with get_engine(db_url).begin() as c:
        assert c.execute(text("SELECT COUNT(*) FROM courses")).scalar() == 1
    init_db(db_url)
    assert NEW <= _tables(db_url)
