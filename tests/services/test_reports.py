"""Data shaping for Home/Trends: tidy records, rates, summaries, at-risk, heatmap, exports, access rules."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import numpy as np
import openpyxl
import pandas as pd
import pytest

from aas_core.db import init_db, repo, session_scope
from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    FaceObservation,
    Role,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
)
from aas_core.services import reports
from aas_core.services.auth import create_user, to_auth_user
from aas_core.tools.curves import eer, rates_at, roc

T0 = datetime(2026, 3, 2, 9, 0)  # a Monday

# course -> list of sessions, each {student: status}
PLAN = {
    "C1": [
        {"s1": "attended", "s2": "late", "s3": "absent"},
        {"s1": "attended", "s2": "absent", "s3": "absent"},
        {"s1": "left_early", "s2": "attended", "s3": "late"},
        {"s1": "attended", "s2": "absent", "s3": "absent"},
    ],
    "C2": [{"s1": "absent", "s4": "attended"}],
}


@pytest.fixture
def db(db_url: str) -> str:
    """The same data on SQLite and on the real MariaDB (conftest ``db_url``): the queries must agree."""
    url = db_url
    init_db(url)
    with session_scope(url) as s:
        inst = create_user(s, "teach", "plum-orbit-lantern-42", Role.INSTRUCTOR)
        other = create_user(s, "other", "plum-orbit-lantern-42", Role.INSTRUCTOR)
        inst_id = to_auth_user(s, inst).instructor_id
        other_id = to_auth_user(s, other).instructor_id
        students = {sn: repo.add_student(s, sn, f"Name {sn}", consent=True) for sn in ("s1", "s2", "s3", "s4")}
        courses = {"C1": repo.add_course(s, "C1", "One", instructor_id=inst_id),
                   "C2": repo.add_course(s, "C2", "Two", instructor_id=other_id)}
        for code, sessions in PLAN.items():
            for k, statuses in enumerate(sessions):
                sess = ClassSession(course_id=courses[code].id, started_at=T0 + timedelta(days=k, hours=len(code)),
                                    status=SessionStatus.COMPLETED)
                s.add(sess)
                s.flush()
                snap = Snapshot(session_id=sess.id, index=0, status=SnapshotStatus.PROCESSED)
                s.add(snap)
                s.flush()
                for sn, st in statuses.items():
                    s.add(AttendanceRecord(session_id=sess.id, student_id=students[sn].id, auto_status=st,
                                           final_status=st, presence=[st != "absent", None, st == "attended"],
                                           best_similarity=0.6 if st != "absent" else None))
                    if st != "absent":
                        s.add(FaceObservation(snapshot_id=snap.id, x1=0, y1=0, x2=10, y2=10, det_score=0.9,
                                              student_id=students[sn].id, similarity=0.6))
                s.add(FaceObservation(snapshot_id=snap.id, x1=0, y1=0, x2=10, y2=10, det_score=0.9,
                                      top_matches=[["s1", 0.21], ["s2", 0.1]]))
        create_user(s, "stud1", "plum-orbit-lantern-42", Role.STUDENT, student_number="s1")
    return url


def _user(url: str, name: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from aas_core.db.models import User

    with session_scope(url) as s:
        return to_auth_user(s, s.scalar(select(User).where(User.username == name)))


def test_load_records_is_tidy_and_filterable(db: str) -> None:
    with session_scope(db) as s:
        df = reports.load_records(s)
        assert len(df) == 3 * 4 + 2
        assert list(df.columns) == reports.RECORD_COLUMNS
        assert df["started_at"].is_monotonic_decreasing
        assert set(df["presence"]) <= {"✓–✓", "✗–✗", "✓–✗"}
        c1 = repo.get_course(s, "C1").id
        assert set(reports.load_records(s, course_ids=[c1])["course_code"]) == {"C1"}
        assert reports.load_records(s, course_ids=[]).empty
        one_day = reports.load_records(s, start=date(2026, 3, 3), end=date(2026, 3, 3))
        assert set(one_day["date"]) == {date(2026, 3, 3)}
        assert set(reports.load_records(s, student_number="s2")["student_number"]) == {"s2"}


def test_rates_summary_and_at_risk(db: str) -> None:
    with session_scope(db) as s:
        df = reports.load_records(s, course_ids=[repo.get_course(s, "C1").id])
    rates = reports.session_rates(df)
    assert rates["started_at"].is_monotonic_increasing
    assert rates["rate"].round(3).tolist() == [0.667, 0.333, 1.0, 0.333]
    assert rates["late_rate"].round(3).tolist() == [0.333, 0.0, 0.333, 0.0]
    summary = reports.student_summary(df).set_index("student_number")
    assert summary.loc["s1", "rate"] == 1.0 and summary.loc["s1", "left_early"] == 1
    assert summary.loc["s2", "rate"] == 0.5 and summary.loc["s2", "last_status"] == "absent"
    assert summary.loc["s3", "rate"] == 0.25
    risky = reports.at_risk(reports.student_summary(df), 0.75)
    assert risky["student_number"].tolist() == ["s3", "s2"]  # lowest first
    assert reports.at_risk(reports.student_summary(df), 0.2).empty
    assert reports.attendance_rate(df) == pytest.approx(7 / 12)
    assert reports.attendance_rate(df.iloc[0:0]) is None


def test_status_matrix_for_heatmap(db: str) -> None:
    with session_scope(db) as s:
        df = reports.load_records(s)
    codes, labels = reports.status_matrix(df)
    assert codes.shape == (4, 5)  # 4 students x 5 sessions
    assert labels.loc["s4 Name s4"].notna().sum() == 1  # s4 only in C2
    assert np.isnan(codes.loc["s4 Name s4"]).sum() == 4
    first_col = codes.columns[0]
    assert codes.loc["s3 Name s3", first_col] == reports.STATUS_CODE["absent"]


def test_records_for_user_applies_roles(db: str) -> None:
    with session_scope(db) as s:
        admin_all = reports.records_for_user(s, _user(db, "teach").__class__(0, "root", Role.ADMIN))
        assert len(admin_all) == 14
        teach = reports.records_for_user(s, _user(db, "teach"))
        assert set(teach["course_code"]) == {"C1"}
        other = reports.records_for_user(s, _user(db, "other"))
        assert set(other["course_code"]) == {"C2"}
        # an instructor asking for a course that is not theirs gets nothing of it
        c2 = repo.get_course(s, "C2").id
        assert reports.records_for_user(s, _user(db, "teach"), course_ids=[c2]).empty
        stud = reports.records_for_user(s, _user(db, "stud1"), student_number="s2")
        assert set(stud["student_number"]) == {"s1"} and len(stud) == 5


def test_sessions_table_and_similarity(db: str) -> None:
    with session_scope(db) as s:
        c1 = repo.get_course(s, "C1").id
        t = reports.sessions_table(s, [c1], limit=3)
        assert len(t) == 3 and t["started_at"].is_monotonic_decreasing
        assert t.iloc[0]["records"] == 3
        assert reports.sessions_table(s, [], 5).empty
        sims = reports.similarity_frame(s, reports.load_records(s)["session_id"].unique().tolist())
    assert set(sims["matched"]) == {True, False}
    assert sims.loc[~sims["matched"], "similarity"].eq(0.21).all()


def test_week_bounds() -> None:
    assert reports.week_bounds(date(2026, 3, 5)) == (date(2026, 3, 2), date(2026, 3, 8))


def test_csv_and_xlsx_exports_are_formula_safe(db: str) -> None:
    with session_scope(db) as s:
        rec = s.query(AttendanceRecord).first()
        repo.override_status(s, rec, "attended", "teach", "=HYPERLINK(\"x\")")
    with session_scope(db) as s:
        df = reports.load_records(s)
    csv_text = reports.to_csv_bytes(df).decode("utf-8-sig")
    back = pd.read_csv(io.StringIO(csv_text))
    assert len(back) == len(df)
    assert back["override_reason"].dropna().str.startswith("'=").all()
    wb = openpyxl.load_workbook(io.BytesIO(reports.to_xlsx_bytes(df)))
    assert wb.sheetnames == ["records", "per_student", "per_session"]
    per_student = list(wb["per_student"].values)
    assert per_student[0][:3] == ("course_code", "student_number", "student_name")
    assert len(per_student) == 1 + 5  # C1 x 3 students + C2 x 2 students
    assert len(list(wb["records"].values)) == 1 + len(df)


def test_empty_frames_keep_their_columns() -> None:
    e = reports.empty_records()
    assert list(e.columns) == reports.RECORD_COLUMNS
    assert reports.session_rates(e).empty and "rate" in reports.session_rates(e).columns
    assert reports.student_summary(e).empty
    assert reports.status_matrix(e)[0].empty


def test_roc_det_and_rates() -> None:
    g = np.array([0.9, 0.8, 0.7, 0.3])
    i = np.array([0.1, 0.2, 0.35, 0.5])
    assert rates_at(g, i, 0.4) == (0.75, 0.25)
    c = roc(g, i, points=50)
    assert c.far[0] == 0 and c.tar[0] == 0 and c.far[-1] == 1 and c.tar[-1] == 1
    assert np.all(np.diff(c.far) >= 0) and np.all(np.diff(c.tar) >= 0)
    e, thr = eer(g, i)
    assert 0.2 <= e <= 0.3 and 0.3 <= thr <= 0.5
