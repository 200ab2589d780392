"""Issue 13 daily work in the services, on SQLite and the real MariaDB: bulk consent from signed forms
(by the role the consent policy names), archiving a course, deleting a test session with its
files, correcting a student's name and e-mail, the Students list filters, plans in minutes, and
the review editor keyed by student."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from trust_world import World, all_files

from aas_core.db import repo, session_scope
from aas_core.db.models import AuditLog, ClassSession, FaceObservation, Snapshot, SessionStatus, Student, utcnow
from aas_core.domain.course_config import ConfigError, PlanConfig
from aas_core.services import courses, privacy, review, students
from aas_core.services.auth import AccessDenied
from aas_core.services.roster import RosterFileError


def _audits(url: str, action: str) -> list[AuditLog]:
    with session_scope(url) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _no_consent(url: str, *numbers: str) -> None:
    with session_scope(url) as s:
        for sn in numbers:
            repo.get_student(s, sn).consent_given_at = None


# --- bulk consent -----------------------------------------------------------------------------------------

def test_bulk_consent_from_signed_forms(world: World) -> None:
    url = world.url
    _no_consent(url, "S1", "S2")
    forms = [privacy.ConsentForm("S1", date(2026, 1, 15), "form 2026-014", line=2),
             privacy.ConsentForm("S2", None, None, line=3),
             privacy.ConsentForm("S3", date(2026, 1, 16), "form 2026-015", line=4),  # consented already
             privacy.ConsentForm("S9", date(2026, 1, 16), None, line=5),
             privacy.ConsentForm("S1", date(2026, 1, 17), None, line=6),
             privacy.ConsentForm("S2", utcnow().date() + timedelta(days=3), None, line=7)]
    res = students.record_consent_forms(url, world.users["admin"], forms)
    assert res.recorded == ["S1", "S2"] and res.already == ["S3"]
    assert res.refused == ["line 5: S9: no such student", "line 6: S1: listed twice",
                           "line 7: S2: listed twice"]
    with session_scope(url) as s:
        s1, s2 = repo.get_student(s, "S1"), repo.get_student(s, "S2")
        assert (s1.consent_given_at.date(), s1.consent_reference) == (date(2026, 1, 15), "form 2026-014")
        assert s2.has_consent and s2.consent_reference is None
    logged = _audits(url, "consent.give")
    assert [(a.actor, a.target_id, a.details["bulk"]) for a in logged] == [("root-admin", "S1", True),
                                                                         ("root-admin", "S2", True)]
    assert logged[0].details["reference"] == "form 2026-014" and logged[0].details["signed_on"] == "2026-01-15"
    # a withdrawal clears the form's reference with the consent
    privacy_withdraw = students.withdraw_consent(url, world.store, world.users["admin"], "S1")
    assert privacy_withdraw["samples"] == 2
    with session_scope(url) as s:
        s1 = repo.get_student(s, "S1")
        assert (s1.consent_given_at, s1.consent_reference) == (None, None)


def test_bulk_consent_is_for_administrators_only(world: World) -> None:
    _no_consent(world.url, "S1")
    for who in ("alice", "s1"):
        with pytest.raises(AccessDenied, match="administrator"):
            students.record_consent_forms(world.url, world.users[who], [privacy.ConsentForm("S1")])
    with session_scope(world.url) as s:
        assert not repo.get_student(s, "S1").has_consent
    assert not _audits(world.url, "consent.give")


def test_a_future_date_is_refused(world: World) -> None:
    _no_consent(world.url, "S1")
    res = students.record_consent_forms(world.url, world.users["admin"],
                                        [privacy.ConsentForm("S1", utcnow().date() + timedelta(days=1))])
    assert res.recorded == [] and "a date in the future" in res.refused[0]


def test_consent_csv_parsing() -> None:
    forms, errors = privacy.parse_consent_csv(
        "\ufeffStudent ID;Signed on;Reference\nS1;2026-01-15;form 14\n\nS2;;\n;2026-01-01;x\nS3;15/01/2026;y\n"
        .encode())
    assert [(f.student_number, f.signed_on, f.reference, f.line) for f in forms] == [
        ("S1", date(2026, 1, 15), "form 14", 2), ("S2", None, None, 4)]
    assert errors == ["line 5: no student id", "line 6: S3: signed_on '15/01/2026' is not a date (write YYYY-MM-DD)"]
    with pytest.raises(RosterFileError, match="student_id"):
        privacy.parse_consent_csv(b"name,date\nx,2026-01-01\n")
    with pytest.raises(RosterFileError, match="empty"):
        privacy.parse_consent_csv(b"\n\n")


# --- archive a course ----------------------------------------------------------------------------------------

def test_archived_courses_keep_their_records_and_leave_the_pickers(world: World) -> None:
    url, alice = world.url, world.users["alice"]
    assert courses.archive_course(url, alice, "A101")
    assert not courses.archive_course(url, alice, "A101")  # already archived: nothing to do
    assert [c.code for c in courses.list_courses(url, alice, active_only=True)] == []
    assert [(c.code, c.archived) for c in courses.list_courses(url, alice)] == [("A101", True)]
    with session_scope(url) as s:  # records kept
        assert len(repo.sessions_of(s, repo.get_course(s, "A101"))) == 2
    # an archived course takes no new students from the Students page
    assert "A101" not in students.visible_students(url, alice).course_codes
    with pytest.raises(AccessDenied):
        courses.archive_course(url, world.users["bob"], "A101", archived=False)
    assert courses.archive_course(url, alice, "A101", archived=False)
    assert [c.code for c in courses.list_courses(url, alice, active_only=True)] == ["A101"]
    assert [a.action for a in _audits(url, "course.archive") + _audits(url, "course.unarchive")] == [
        "course.archive", "course.unarchive"]


# --- delete a session ------------------------------------------------------------------------------------------

def test_delete_a_test_session_with_its_files(world: World) -> None:
    url, sid = world.url, world.sessions["A_new"]
    with session_scope(url) as s:
        paths = {p for snap in s.scalars(select(Snapshot).where(Snapshot.session_id == sid))
                 for p in [snap.image_path, *(x for o in snap.observations for x in (o.crop_path, o.enhanced_path))]
                 if p}
    assert paths and paths <= all_files(world.store)
    with pytest.raises(AccessDenied):
        review.delete_session(url, world.store, world.users["bob"], sid)
    with pytest.raises(ValueError, match="still running"):
        review.delete_session(url, world.store, world.users["alice"], sid, running=[sid])
    counts = review.delete_session(url, world.store, world.users["alice"], sid)
    assert counts == {"snapshots": 1, "faces": 2, "records": 2, "overrides": 0, "files": len(paths)}
    assert not paths & all_files(world.store)
    with session_scope(url) as s:
        assert s.get(ClassSession, sid) is None
        assert not s.scalars(select(FaceObservation).join(Snapshot).where(Snapshot.session_id == sid)).all()
        assert s.get(ClassSession, world.sessions["A_old"]) is not None  # the other sessions stay
    [a] = _audits(url, "session.delete")
    assert (a.actor, a.target_id, a.details["course"], a.details["files"]) == ("alice", str(sid), "A101", len(paths))


def test_a_running_session_cannot_be_deleted(world: World) -> None:
    with session_scope(world.url) as s:
        s.get(ClassSession, world.sessions["B_new"]).status = SessionStatus.RUNNING
    with pytest.raises(ValueError, match="stop it first"):
        review.delete_session(world.url, world.store, world.users["bob"], world.sessions["B_new"])


# --- a student's name and e-mail ---------------------------------------------------------------------------------

def test_correct_a_students_name_and_email(world: World) -> None:
    url, alice = world.url, world.users["alice"]
    assert students.update_student(url, alice, "S1", name="  Ana Lima ", email="ana@school.test") == ["name", "email"]
    assert students.update_student(url, alice, "S1", name="Ana Lima", email="ana@school.test") == []
    assert students.update_student(url, alice, "S1", name="Ana Lima", email="") == ["email"]
    with session_scope(url) as s:
        st = repo.get_student(s, "S1")
        assert (st.name, st.email) == ("Ana Lima", None)
    with pytest.raises(ValueError, match="not an e-mail"):
        students.update_student(url, alice, "S1", name="Ana", email="ana@")
    with pytest.raises(ValueError, match="needs a name"):
        students.update_student(url, alice, "S1", name=" ", email=None)
    with pytest.raises(AccessDenied):
        students.update_student(url, world.users["bob"], "S1", name="Not yours", email=None)
    logged = _audits(url, "student.update")
    assert [a.details["fields"] for a in logged] == [["name", "email"], ["email"]]
    assert "Ana" not in repr([a.details for a in logged])  # the audit names fields, not values


# --- the Students list ------------------------------------------------------------------------------------------

def test_students_list_filters_and_search(world: World) -> None:
    _no_consent(world.url, "S3")
    with session_scope(world.url) as s:
        s.add(Student(student_number="S4", name="Zoë Photo-less"))
    rows = students.visible_students(world.url, world.users["admin"]).rows
    ids = lambda rs: [r["student_id"] for r in rs]  # noqa: E731
    assert ids(students.filter_students(rows, ["no_consent"])) == ["S3", "S4"]
    assert ids(students.filter_students(rows, ["no_photos"])) == ["S4"]
    assert ids(students.filter_students(rows, ["pending"])) == []
    assert ids(students.filter_students(rows, [], "zoë")) == ["S4"]
    assert ids(students.filter_students(rows, [], "s2")) == ["S2"]
    assert ids(students.filter_students(rows, ["no_consent"], "student")) == ["S3"]


# --- plans in minutes -----------------------------------------------------------------------------------------------

def test_plans_are_checked_in_minutes() -> None:
    keep = PlanConfig()
    plan = courses.plan_from_minutes(3, 5, 30, 50, keep=keep)
    assert (plan.first_after_s, plan.second_after_s, plan.session_length_s) == (300, 1800, 3000)
    with pytest.raises(ConfigError) as e:
        courses.plan_from_minutes(3, 40, 30, 71, keep=keep)
    assert "= 1 h 11 min" in str(e.value) and "4260" not in str(e.value)
    with pytest.raises(ConfigError, match="must come before the end"):
        courses.plan_from_minutes(1, 60, 0, 50, keep=keep)
    assert courses.readable_config_error("plan.first_after_s: must be >= 0") == "First snapshot after: must be >= 0"
    assert courses.changed_text(["config.plan", "config.rules"]) == "capture plan, status rules"


# --- the review editor ----------------------------------------------------------------------------------------------

def _row(sn: str, final: str, reason: str = "") -> dict:
    return {"student_id": sn, "final": final, "reason": reason}


def test_review_edits_follow_the_student_not_the_row() -> None:
    before = [_row("s1006", "attended"), _row("s1007", "attended")]
    after_save = [_row("s1006", "absent", "Phoned in sick"), _row("s1007", "attended")]
    resorted = [after_save[1], after_save[0]]
    # a new order is a new editor: edits kept by position cannot move to another student
    assert review.editor_key(1, before) != review.editor_key(1, resorted)
    assert review.editor_key(1, before, 0) != review.editor_key(1, before, 1)
    # unsaved edits are carried by student id into whatever order the rows come in
    pending = {"s1007": ("late", "bus")}
    shown = review.with_pending(resorted, pending)
    assert shown[0] == _row("s1007", "late", "bus") and shown[1] == after_save[0]
    assert review.changed_rows(resorted, shown) == pending
