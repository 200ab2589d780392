"""Home page figures: course and student counts, recent sessions, this week's and all attendance.

One transaction, the role rules applied here (``visible_courses``, ``reports.records_for_user``):
an admin counts everything, an instructor their own courses and the students on them, a student
sees only their own attendance (no courses, no sessions, no other students).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from aas_core.db import repo, session_scope
from aas_core.db.models import Role
from aas_core.services import reports
from aas_core.services.auth import AuthUser, visible_courses

__all__ = ["RECENT_SESSIONS", "HomeFigures", "home_figures"]

RECENT_SESSIONS = 10


@dataclass(frozen=True)
class HomeFigures:
    monday: date
    sunday: date
    n_courses: int
    n_students: int
    sessions: pd.DataFrame  # reports.sessions_table: latest sessions of the visible courses (students: none)
    week: pd.DataFrame  # records of this week (Monday..Sunday of ``today``)
    records: pd.DataFrame  # every record the user may see
    summary: pd.DataFrame  # reports.student_summary(records)
    at_risk: pd.DataFrame  # below reports.AT_RISK_DEFAULT
    week_rate: float | None
    rate: float | None  # over every record


def home_figures(url: str, user: AuthUser, today: date, *, limit: int = RECENT_SESSIONS) -> HomeFigures:
    """What Home shows ``user`` for the week of ``today``."""
    monday, sunday = reports.week_bounds(today)
    with session_scope(url) as s:
        if user.role == Role.STUDENT and not user.is_admin:
            n_courses = n_students = 0
            sessions = reports.sessions_table(s, [], 0)
        else:
            courses = visible_courses(s, user)
            course_ids = None if user.is_admin else [c.id for c in courses]
            n_courses = len(courses)
            n_students = len(repo.list_students(s)) if user.is_admin else len(
                {e.student_id for c in courses for e in c.enrollments})
            sessions = reports.sessions_table(s, course_ids, limit=limit)
        week = reports.records_for_user(s, user, start=monday, end=sunday)
        records = reports.records_for_user(s, user)
    summary = reports.student_summary(records)
    return HomeFigures(monday, sunday, n_courses, n_students, sessions, week, records, summary,
                       reports.at_risk(summary, reports.AT_RISK_DEFAULT), reports.attendance_rate(week),
                       reports.attendance_rate(records))
