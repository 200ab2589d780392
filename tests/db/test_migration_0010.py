"""Migration 0010 (archived courses, the consent form's reference) on SQLite and the real MariaDB."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import inspect, text

from aas_core.db import init_db, session_scope
from aas_core.db.engine import downgrade_db, get_engine
from aas_core.db.models import Course, Student


def _columns(url: str, table: str) -> set[str]:
    return {c["name"] for c in inspect(get_engine(url)).get_columns(table)}


def test_rows_before_0010_are_active_and_survive_the_way_back(db_url: str) -> None:
    init_db(db_url)
    downgrade_db(db_url, "0006")
    assert "archived_at" not in _columns(db_url, "courses")
    assert "consent_reference" not in _columns(db_url, "students")
    with get_engine(db_url).begin() as c:
        c.execute(text("INSERT INTO students (student_number, name, consent_given_at, created_at) "
                       "VALUES ('S1', 'x', '2026-01-02', '2026-01-01')"))
        c.execute(text("INSERT INTO courses (code, name, config, created_at, version) "
                       "VALUES ('C1', 'c', '{}', '2026-01-01', 1)"))
    init_db(db_url)
    with session_scope(db_url) as s:
        course, student = s.query(Course).one(), s.query(Student).one()
        assert (course.archived_at, student.consent_reference, student.has_consent) == (None, None, True)
        course.archived_at, student.consent_reference = datetime(2026, 2, 1), "form 2026-014"
    with session_scope(db_url) as s:
        assert s.query(Student).one().consent_reference == "form 2026-014"
        assert s.query(Course).one().archived_at == datetime(2026, 2, 1)
    downgrade_db(db_url, "0006")  # plain DROP COLUMN: the rows stay
    with get_engine(db_url).begin() as c:
        assert c.execute(text("SELECT COUNT(*) FROM courses")).scalar() == 1
        assert c.execute(text("SELECT consent_given_at FROM students")).scalar() is not None
    init_db(db_url)
    assert "archived_at" in _columns(db_url, "courses") and "consent_reference" in _columns(db_url, "students")
