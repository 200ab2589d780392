"""Attendance data shaping for Home and Attendance Trends: query -> tidy DataFrame -> figures.

Plain functions (no Streamlit) so every number the dashboards show is unit-tested.

Definitions
-----------
* one row of the tidy frame = one attendance record (student x session), final status
  (after instructor overrides);
* **attendance rate** = share of a student's (or a session's) records whose final status is
  in ``PRESENT_STATUSES`` (attended, late, left early: the student was in the room). Late
  and left-early rates are reported separately so they are not hidden in that number;
* **at risk** = attendance rate below a threshold (default 75 %) over at least
  ``min_sessions`` sessions.

Access: ``records_for_user`` applies the role rules (admin: all; instructor: own courses;
student: own rows only) so a page cannot forget them.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    Course,
    FaceObservation,
    Role,
    Snapshot,
    Student,
)
from aas_core.services.auth import AuthUser, visible_courses

STATUSES = ("attended", "late", "left_early", "absent")
PRESENT_STATUSES = frozenset({"attended", "late", "left_early"})
STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}  # heatmap colour index
STATUS_COLOURS = {"attended": "#16a34a", "late": "#eab308", "left_early": "#7c3aed", "absent": "#dc2626"}
AT_RISK_DEFAULT = 0.75

RECORD_COLUMNS = ["session_id", "course_code", "course_name", "started_at", "date", "student_number", "student_name",
                  "auto_status", "final_status", "overridden", "overridden_by", "override_reason", "presence",
                  "best_similarity"]


def _day_start(d: date | datetime | None) -> datetime | None:
    if d is None:
        return None
    return d if isinstance(d, datetime) else datetime.combine(d, time.min)


def _day_end(d: date | datetime | None) -> datetime | None:
    if d is None:
        return None
    return d if isinstance(d, datetime) else datetime.combine(d + timedelta(days=1), time.min)


def presence_text(presence: Sequence[bool | None] | None) -> str:
    """``[True, False, None]`` -> ``"✓✗–"`` (– = snapshot missing)."""
    return "".join("✓" if p is True else "✗" if p is False else "–" for p in (presence or []))


def load_records(s: Session, *, course_ids: Iterable[int] | None = None, start: date | datetime | None = None,
                 end: date | datetime | None = None, student_number: str | None = None) -> pd.DataFrame:
    """Tidy attendance records (one row per student x session), newest session first.

    ``course_ids=None`` means all courses; an empty list means none (empty frame).
    ``end`` is inclusive when a ``date`` is given (the whole day).
    """
    q = (select(AttendanceRecord, ClassSession, Course, Student)
         .join(ClassSession, AttendanceRecord.session_id == ClassSession.id)
         .join(Course, ClassSession.course_id == Course.id)
         .join(Student, AttendanceRecord.student_id == Student.id))
    if course_ids is not None:
        ids = list(course_ids)
        if not ids:
            return empty_records()
        q = q.where(Course.id.in_(ids))
    if start is not None:
        q = q.where(ClassSession.started_at >= _day_start(start))
    if end is not None:
        q = q.where(ClassSession.started_at < _day_end(end))
    if student_number is not None:
        q = q.where(Student.student_number == student_number)
    q = q.order_by(ClassSession.started_at.desc(), ClassSession.id.desc(), Student.student_number)
    rows = []
    for rec, sess, course, st in s.execute(q).all():
        rows.append({
            "session_id": sess.id, "course_code": course.code, "course_name": course.name,
            "started_at": sess.started_at, "date": sess.started_at.date(),
            "student_number": st.student_number, "student_name": st.name,
            "auto_status": rec.auto_status, "final_status": rec.final_status,
            "overridden": bool(rec.overridden_by), "overridden_by": rec.overridden_by,
            "override_reason": rec.override_reason, "presence": presence_text(rec.presence),
            "best_similarity": rec.best_similarity,
        })
    if not rows:
        return empty_records()
    df = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    df["started_at"] = pd.to_datetime(df["started_at"])
    df["best_similarity"] = pd.to_numeric(df["best_similarity"], errors="coerce")
    return df


def empty_records() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="object") for c in RECORD_COLUMNS})
    df["started_at"] = pd.Series(dtype="datetime64[ns]")
    df["best_similarity"] = pd.Series(dtype="float64")
    df["session_id"] = pd.Series(dtype="int64")
    df["overridden"] = pd.Series(dtype="bool")
    return df


def allowed_course_ids(s: Session, user: AuthUser) -> list[int] | None:
    """Courses whose records ``user`` may see: None = all (admin)."""
    if user.is_admin:
        return None
    if user.role == Role.INSTRUCTOR:
        return [c.id for c in visible_courses(s, user)]
    return None  # students: restricted by student number instead


def records_for_user(s: Session, user: AuthUser, *, course_ids: Iterable[int] | None = None,
                     start: date | datetime | None = None, end: date | datetime | None = None,
                     student_number: str | None = None) -> pd.DataFrame:
    """``load_records`` restricted by role: a student gets only their own rows whatever is asked."""
    if user.role == Role.STUDENT and not user.is_admin:
        if not user.student_number:
            return empty_records()
        return load_records(s, course_ids=course_ids, start=start, end=end, student_number=user.student_number)
    allowed = allowed_course_ids(s, user)
    if allowed is not None:
        course_ids = [c for c in (allowed if course_ids is None else course_ids) if c in set(allowed)]
    return load_records(s, course_ids=course_ids, start=start, end=end, student_number=student_number)


def _counts(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    counts = (df.assign(n=1).pivot_table(index=by, columns="final_status", values="n", aggfunc="sum", fill_value=0))
    for st in STATUSES:
        if st not in counts.columns:
            counts[st] = 0
    counts = counts[list(STATUSES)].astype(int)
    counts.columns.name = None
    counts["records"] = counts[list(STATUSES)].sum(axis=1)
    present = counts[[s for s in STATUSES if s in PRESENT_STATUSES]].sum(axis=1)
    counts["rate"] = present / counts["records"].where(counts["records"] > 0)
    counts["late_rate"] = counts["late"] / counts["records"].where(counts["records"] > 0)
    counts["left_early_rate"] = counts["left_early"] / counts["records"].where(counts["records"] > 0)
    return counts.reset_index()


def attendance_rate(df: pd.DataFrame) -> float | None:
    """Share of records with a present status; None without records."""
    if df.empty:
        return None
    return float(df["final_status"].isin(PRESENT_STATUSES).mean())


def session_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per session (oldest first): counts per status, rate, late_rate, left_early_rate, and
    ``session``: its label on a session axis (one point per session, in time order)."""
    cols = ["session_id", "course_code", "started_at", "session", *STATUSES, "records", "rate", "late_rate",
            "left_early_rate"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    out = _counts(df, ["session_id", "course_code", "started_at"])
    out = out.sort_values(["started_at", "session_id"]).reset_index(drop=True)
    out["session"] = out.apply(session_label, axis=1)
    return out[cols]


def student_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per course and student: sessions, counts per status, rates, overrides, last status."""
    cols = ["course_code", "student_number", "student_name", "sessions", *STATUSES, "rate", "late_rate",
            "left_early_rate", "overrides", "last_status"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    keys = ["course_code", "student_number", "student_name"]
    out = _counts(df, keys).rename(columns={"records": "sessions"})
    ordered = df.sort_values(["started_at", "session_id"])
    last = ordered.groupby(keys, sort=False)["final_status"].last().rename("last_status")
    overrides = df.groupby(keys)["overridden"].sum().astype(int).rename("overrides")
    out = out.merge(overrides.reset_index(), on=keys).merge(last.reset_index(), on=keys)
    return out.sort_values(["course_code", "student_number"]).reset_index(drop=True)[cols]


def at_risk(summary: pd.DataFrame, threshold: float = AT_RISK_DEFAULT, min_sessions: int = 1) -> pd.DataFrame:
    """Students whose attendance rate is below ``threshold`` (lowest first)."""
    if summary.empty:
        return summary.copy()
    out = summary[(summary["rate"] < threshold) & (summary["sessions"] >= min_sessions)]
    return out.sort_values(["rate", "sessions"], ascending=[True, False]).reset_index(drop=True)


def session_label(row: pd.Series) -> str:
    """"03-02 14:05 CS101 #12": a session on a category axis (unique by its number)."""
    return f"{pd.Timestamp(row['started_at']):%m-%d %H:%M} {row['course_code']} #{row['session_id']}"


def status_matrix(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(codes, labels) matrices for a heatmap: rows = students, columns = sessions (oldest first).

    ``codes`` holds ``STATUS_CODE`` numbers (NaN where the student has no record for that
    session, e.g. not yet on the roster), ``labels`` the status names.
    """
    if df.empty:
        return pd.DataFrame(), pd.DataFrame()
    d = df.copy()
    d["session"] = d.apply(session_label, axis=1)
    d["student"] = d["student_number"] + " " + d["student_name"]
    order = d.sort_values(["started_at", "session_id"])["session"].drop_duplicates().tolist()
    labels = d.pivot_table(index="student", columns="session", values="final_status", aggfunc="first")
    labels = labels.reindex(columns=order).sort_index()
    codes = labels.apply(lambda col: col.map(STATUS_CODE)).astype(float)
    return codes, labels


def week_bounds(today: date) -> tuple[date, date]:
    """Monday..Sunday of ``today``'s week."""
    monday = today - timedelta(days=today.weekday())
    return monday, monday + timedelta(days=6)


def sessions_table(s: Session, course_ids: Iterable[int] | None, limit: int = 10) -> pd.DataFrame:
    """Latest class sessions (any state) with snapshot count and per-status counts, newest first."""
    cols = ["session_id", "course_code", "started_at", "status", "snapshots", "unknown_faces", "records", "rate",
            *STATUSES]
    q = select(ClassSession, Course).join(Course, ClassSession.course_id == Course.id)
    if course_ids is not None:
        ids = list(course_ids)
        if not ids:
            return pd.DataFrame(columns=cols)
        q = q.where(Course.id.in_(ids))
    q = q.order_by(ClassSession.started_at.desc(), ClassSession.id.desc()).limit(limit)
    rows = []
    for sess, course in s.execute(q).all():
        counts = {st: 0 for st in STATUSES}
        for r in sess.records:
            counts[r.final_status] = counts.get(r.final_status, 0) + 1
        n = sum(counts.values())
        rows.append({"session_id": sess.id, "course_code": course.code, "started_at": sess.started_at,
                     "status": sess.status.value, "snapshots": len(sess.snapshots), "unknown_faces": sess.unknown_faces,
                     "records": n, "rate": (sum(counts[x] for x in PRESENT_STATUSES) / n) if n else None, **counts})
    return pd.DataFrame(rows, columns=cols)


def similarity_frame(s: Session, session_ids: Iterable[int]) -> pd.DataFrame:
    """Face observations of the given sessions: similarity of matched faces (best top-1 for unknown)."""
    ids = list(session_ids)
    cols = ["session_id", "snapshot", "similarity", "matched", "student_number", "model"]
    if not ids:
        return pd.DataFrame(columns=cols)
    q = (select(FaceObservation, Snapshot.session_id, Snapshot.index, Student.student_number)
         .join(Snapshot, FaceObservation.snapshot_id == Snapshot.id)
         .outerjoin(Student, FaceObservation.student_id == Student.id)
         .where(Snapshot.session_id.in_(ids)))
    rows = []
    for obs, sid, idx, sn in s.execute(q).all():
        sim = obs.similarity
        if sim is None and obs.top_matches:
            try:
                sim = float(obs.top_matches[0][1])
            except (TypeError, ValueError, IndexError):
                sim = None
        if sim is None:
            continue
        rows.append({"session_id": sid, "snapshot": idx + 1, "similarity": float(sim),
                     "matched": obs.student_id is not None, "student_number": sn, "model": obs.model_name})
    return pd.DataFrame(rows, columns=cols)


# --- downloads -----------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(v: object) -> object:
    """Neutralise spreadsheet formulas in user-entered text (CSV/Excel injection); every export uses it."""
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v
    return v


def audit_export(url: str, user: AuthUser, kind: str, rows: int, **details: object) -> None:
    """Record that ``user`` downloaded ``rows`` attendance rows (the dashboard's CSV/XLSX buttons)."""
    from aas_core.db import repo, session_scope

    with session_scope(url) as s:
        repo.audit(s, user.username, "export", "attendance", kind, rows=rows,
                   **{k: (v if isinstance(v, (int, float, bool, type(None), list)) else str(v))
                      for k, v in details.items()})


def export_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Records as exported: readable columns, text cells made formula-safe."""
    out = df.copy()
    if "started_at" in out:
        out["started_at"] = pd.to_datetime(out["started_at"]).dt.strftime("%Y-%m-%d %H:%M")
    if "date" in out:
        out["date"] = out["date"].astype(str)
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(formula_safe)
    return out


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """UTF-8 with BOM so Excel opens names with accents correctly."""
    return export_frame(df).to_csv(index=False).encode("utf-8-sig")


#: Times are stored as naive UTC; the workbook says so in the header of every time column.
XLSX_TIME_COLUMNS = {"started_at": "started_at (UTC)", "date": "date (UTC)"}


def xlsx_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Records as the workbook holds them: times as real Excel dates (sortable, filterable), their
    columns named with the time zone, text cells formula-safe."""
    out = df.copy()
    if "started_at" in out:
        out["started_at"] = pd.to_datetime(out["started_at"])
    if "date" in out:
        out["date"] = pd.to_datetime(out["date"])
    for c in out.columns:
        if c not in XLSX_TIME_COLUMNS and (out[c].dtype == object or pd.api.types.is_string_dtype(out[c])):
            out[c] = out[c].map(formula_safe)
    return out.rename(columns=XLSX_TIME_COLUMNS)


def to_xlsx_bytes(records: pd.DataFrame, summary: pd.DataFrame | None = None,
                  sessions: pd.DataFrame | None = None) -> bytes:
    """Workbook: 'records', 'per_student' (summary) and 'per_session' sheets; times are Excel dates
    in UTC (the header says so)."""
    summary = student_summary(records) if summary is None else summary
    sessions = session_rates(records) if sessions is None else sessions
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xw:
        xlsx_frame(records).to_excel(xw, sheet_name="records", index=False)
        xlsx_frame(summary).to_excel(xw, sheet_name="per_student", index=False)
        xlsx_frame(sessions).to_excel(xw, sheet_name="per_session", index=False)
        for ws in xw.book.worksheets:
            ws.freeze_panes = "A2"
            for col in ws.columns:
                head = col[0].value
                fmt = {"started_at (UTC)": "yyyy-mm-dd hh:mm", "date (UTC)": "yyyy-mm-dd"}.get(head)
                if fmt:
                    for c in col[1:]:
                        c.number_format = fmt
                width = max((len(str(c.value)) for c in col if c.value is not None), default=8)
                ws.column_dimensions[col[0].column_letter].width = min(40, max(8, width + 2, 18 if fmt else 0))
    return buf.getvalue()


# --- Attendance Trends (one service call per action) ----------------------------------------------

from dataclasses import dataclass


@dataclass(frozen=True)
class TrendScope:
    """What the Trends filters offer ``user``: every record they may see and the courses to pick from."""

    records: pd.DataFrame  # records_for_user(user), unfiltered
    course_codes: list[str]  # sorted; students: the courses of their own records
    course_ids: dict[str, int]  # code -> id of the courses the user manages (students: empty)


@dataclass(frozen=True)
class TrendData:
    """The filtered records and everything Trends draws from them."""

    records: pd.DataFrame
    similarities: pd.DataFrame  # similarity_frame of those sessions, only the faces the user may see
    rates: pd.DataFrame  # session_rates(records)
    summary: pd.DataFrame  # student_summary(records)


def _is_student(user: AuthUser) -> bool:
    return user.role == Role.STUDENT and not user.is_admin


def trend_scope(url: str, user: AuthUser) -> TrendScope:
    """Filter options for Attendance Trends (role rules of ``records_for_user`` / ``visible_courses``)."""
    from aas_core.db import session_scope

    with session_scope(url) as s:
        everything = records_for_user(s, user)
        courses = {} if _is_student(user) else {c.code: c.id for c in visible_courses(s, user)}
    if _is_student(user):
        codes = sorted(everything["course_code"].unique()) if not everything.empty else []
    else:
        codes = sorted(courses)
    return TrendScope(everything, codes, courses)


def trend_data(url: str, user: AuthUser, course_codes: Sequence[str], start: date | datetime,
               end: date | datetime, student_number: str | None = None) -> TrendData:
    """Records of the picked courses between ``start`` and ``end`` (inclusive), optionally one student.

    An instructor gets only their own courses whatever is asked (codes of other courses are
    ignored); a student only their own rows and their own faces' similarities, whichever student is
    asked for.
    """
    from aas_core.db import session_scope

    student = _is_student(user)
    with session_scope(url) as s:
        ids = None
        if not student:
            code_to_id = {c.code: c.id for c in visible_courses(s, user)}
            ids = [code_to_id[c] for c in course_codes if c in code_to_id]
        df = records_for_user(s, user, course_ids=ids, start=start, end=end,
                              student_number=student_number)  # a student: their own rows whatever is asked
        if student and not df.empty:
            df = df[df["course_code"].isin(list(course_codes))]
        sims = similarity_frame(s, df["session_id"].unique().tolist() if not df.empty else [])
    if student and not sims.empty:
        sims = sims[sims["student_number"] == user.student_number]  # never other people's faces
    elif student_number and not sims.empty:
        sims = sims[sims["student_number"] == student_number]
    return TrendData(df, sims, session_rates(df), student_summary(df))
