"""Migration 0007 (rooms, cameras, camera health, timetables, scheduled sessions) on SQLite and the real
MariaDB: rows written before survive the way up and back, and the new unique keys hold in the database."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from aas_core.db import init_db, session_scope
from aas_core.db.engine import downgrade_db, get_engine
from aas_core.db.models import (
    Camera,
    CameraHealth,
    CaptureDispatch,
    ClassSession,
    Course,
    MissedMeeting,
    Room,
    SchedulerInstance,
)
from aas_core.domain.timetable import Timetable

NEW_TABLES = {"rooms", "cameras", "camera_health", "missed_meetings", "scheduler_instances", "capture_dispatches"}


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names())


def _columns(url: str, table: str) -> set[str]:
    return {c["name"] for c in inspect(get_engine(url)).get_columns(table)}


def test_0007_up_and_down_keeps_existing_rows_and_enforces_one_session_per_meeting(db_url: str) -> None:
    init_db(db_url)
    downgrade_db(db_url, "0006")
    assert not NEW_TABLES & _tables(db_url)
    assert "timetable" not in _columns(db_url, "courses") and "meeting_start" not in _columns(db_url, "sessions")
    with get_engine(db_url).begin() as c:
        c.execute(text("INSERT INTO courses (code, name, config, created_at, version) "
                       "VALUES ('C1', 'c', '{}', '2026-01-01', 1)"))
        c.execute(text("INSERT INTO sessions (course_id, started_at, status, unknown_faces) "
                       "SELECT id, '2026-01-01', 'completed', 0 FROM courses"))
        c.execute(text("INSERT INTO sessions (course_id, started_at, status, unknown_faces) "
                       "SELECT id, '2026-01-02', 'completed', 0 FROM courses"))
    init_db(db_url)
    assert NEW_TABLES <= _tables(db_url)
    start = datetime(2026, 3, 2, 8, 0)
    with session_scope(db_url) as s:
        course = s.query(Course).one()
        assert course.timetable is None and {x.meeting_start for x in s.query(ClassSession)} == {None}  # old rows
        course.timetable = Timetable(timezone="Europe/Berlin", term_start="2026-03-02", term_end="2026-03-31",
                                     weekly=[{"weekday": "Mon", "start": "09:00", "end": "10:00", "room": "R1"}])
        room = Room(name="R1")
        s.add(room)
        s.flush()
        s.add(Camera(name="cam1", room_id=room.id, kind="ipwebcam", host="http://10.0.0.5:8080",
                     options={"timeout_s": 3}))
        s.add(CameraHealth(camera="cam1", last_ok_at=datetime(2026, 3, 2, 8, 0, 0, 123456)))
        s.add(SchedulerInstance(instance="host-1-abc", last_tick_at=start))
        sess = ClassSession(course_id=course.id, meeting_start=start)
        s.add(sess)
        s.flush()
        s.add(CaptureDispatch(session_id=sess.id, index=0, dispatched_at=start, instance="host-1-abc"))
        s.add(MissedMeeting(course_id=course.id, meeting_start=datetime(2026, 3, 9, 8), reason="down"))
    with session_scope(db_url) as s:
        assert s.query(Course).one().timetable.weekly[0].room == "R1"  # validated on the way back
        assert s.get(CameraHealth, "cam1").last_ok_at.microsecond == 123456  # kept on MySQL too
    # one session per course and meeting start, whoever writes it
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            s.add(ClassSession(course_id=s.query(Course).one().id, meeting_start=start))
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            s.add(MissedMeeting(course_id=s.query(Course).one().id, meeting_start=datetime(2026, 3, 9, 8), reason="x"))
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            sid = s.query(ClassSession).filter(ClassSession.meeting_start.is_not(None)).one().id
            s.add(CaptureDispatch(session_id=sid, index=0, dispatched_at=start, instance="other"))
    # a course's sessions started by hand (no meeting) never collide
    with session_scope(db_url) as s:
        s.add(ClassSession(course_id=s.query(Course).one().id))
        s.add(ClassSession(course_id=s.query(Course).one().id))
    downgrade_db(db_url, "0006")  # the way back keeps the sessions (without their meeting)
    assert not NEW_TABLES & _tables(db_url)
    with get_engine(db_url).begin() as c:
        assert c.execute(text("SELECT COUNT(*) FROM sessions")).scalar() == 5
        assert c.execute(text("SELECT COUNT(*) FROM courses")).scalar() == 1
    init_db(db_url)
    assert "meeting_start" in _columns(db_url, "sessions")
