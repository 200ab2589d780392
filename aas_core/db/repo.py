"""Queries and writes used by the CLI, the UI and the session runner (SQLAlchemy 2.0 style).

The services (``aas_core.services``) call these after their access checks; each write here
records its audit entry. Functions take an open ``Session``; the caller owns the transaction
(``session_scope``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aas_core.db.embeddings import from_blob
from aas_core.db.models import (
    AttendanceRecord,
    AuditLog,
    ClassSession,
    Course,
    Enrollment,
    FaceCorrection,
    FaceObservation,
    FaceSample,
    FaceTemplate,
    Instructor,
    SampleStatus,
    Student,
    utcnow,
)
from aas_core.domain.course_config import CourseConfig


class NotFound(LookupError):
    """A course/student/session named by the user does not exist."""


class AlreadyExists(ValueError):
    pass


class StaleEdit(ValueError):
    """The record changed after the editor loaded it (another tab or another user)."""


def audit(s: Session, actor: str, action: str, target_type: str | None = None,
          target_id: str | int | None = None, **details: Any) -> None:
    s.add(AuditLog(actor=actor, action=action, target_type=target_type,
                   target_id=None if target_id is None else str(target_id), details=details or None))


# --- courses --------------------------------------------------------------------------------

def add_course(s: Session, code: str, name: str, *, actor: str = "system", instructor_id: int | None = None,
               schedule: str | None = None, room: str | None = None,
               config: CourseConfig | None = None) -> Course:
    code = code.strip()
    if not code:
        raise ValueError("course code must not be empty")
    if s.scalar(select(Course).where(Course.code == code)):
        raise AlreadyExists(f"course {code!r} already exists")
    course = Course(code=code, name=name.strip() or code, instructor_id=instructor_id, schedule=schedule, room=room,
                    config=CourseConfig.parse(config))
    s.add(course)
    s.flush()
    audit(s, actor, "course.create", "course", code, name=name)
    return course


COURSE_EDITABLE = ("name", "schedule", "room", "config", "instructor_id")


def update_course(s: Session, course: Course, *, actor: str, expected_version: int | None = None,
                  **changes: Any) -> list[str]:
    """Apply changes to a course; returns the changed field names (audited as ``course.update``).

    ``expected_version``: the ``Course.version`` the editor showed. If the course changed since
    (another tab, another instructor), nothing is written and ``StaleEdit`` says so, instead of
    silently overwriting their change. Concurrent transactions are also caught by the ORM's
    version check at flush time.
    """
    unknown = set(changes) - set(COURSE_EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if expected_version is not None and course.version != expected_version:
        raise StaleEdit(f"course {course.code} was changed by someone else since this page loaded it "
                        "(another tab?); your edits were not saved. Reload to see the current values.")
    changed = []
    for k, v in changes.items():
        if k == "name":
            v = (v or "").strip() or course.code
        if k in ("schedule", "room"):
            v = (v or "").strip() or None
        if k == "config":
            v = CourseConfig.parse(v)
            sections = [f for f in CourseConfig.model_fields if getattr(course.config, f) != getattr(v, f)]
            if sections:
                course.config = v
                changed += [f"config.{f}" for f in sections]
            continue
        if getattr(course, k) != v:
            setattr(course, k, v)
            changed.append(k)
    if changed:
        # The config holds no secrets (a camera is a name), so the audit can keep the values.
        audit(s, actor, "course.update", "course", course.code, fields=changed,
              **({"config": course.config.model_dump(mode="json")} if any(c.startswith("config.") for c in changed)
                 else {}))
        s.flush()
    return changed


def remove_from_roster(s: Session, course: Course, student: Student, actor: str) -> bool:
    enr = s.get(Enrollment, (course.id, student.id))
    if enr is None:
        return False
    s.delete(enr)
    s.flush()
    audit(s, actor, "roster.remove", "course", course.code, student=student.student_number)
    return True


def get_course(s: Session, code: str) -> Course:
    course = s.scalar(select(Course).where(Course.code == code))
    if course is None:
        raise NotFound(f"no course with code {code!r} (create it with `aas course add {code} --name ...`)")
    return course


def list_courses(s: Session, instructor_id: int | None = None) -> Sequence[Course]:
    q = select(Course).order_by(Course.code)
    if instructor_id is not None:
        q = q.where(Course.instructor_id == instructor_id)
    return s.scalars(q).all()


def add_instructor(s: Session, name: str, email: str | None = None, user_id: int | None = None) -> Instructor:
    inst = Instructor(name=name, email=email, user_id=user_id)
    s.add(inst)
    s.flush()
    return inst


# --- students -------------------------------------------------------------------------------

def add_student(s: Session, student_number: str, name: str, *, email: str | None = None,
                consent: bool = False, actor: str = "system") -> Student:
    student_number = student_number.strip()
    if not student_number:
        raise ValueError("student id must not be empty")
    if s.scalar(select(Student).where(Student.student_number == student_number)):
        raise AlreadyExists(f"student {student_number!r} already exists")
    st = Student(student_number=student_number, name=name.strip() or student_number, email=email,
                 consent_given_at=utcnow() if consent else None)
    s.add(st)
    s.flush()
    audit(s, actor, "student.create", "student", student_number, consent=consent)
    return st


def find_student(s: Session, student_number: str) -> Student | None:
    return s.scalar(select(Student).where(Student.student_number == student_number))


def get_student(s: Session, student_number: str) -> Student:
    st = find_student(s, student_number)
    if st is None:
        raise NotFound(f"no student with id {student_number!r} (add with `aas student add {student_number} --name ...`)")
    return st


def get_or_create_student(s: Session, student_number: str, name: str | None = None, *, consent: bool = False,
                          actor: str = "system") -> tuple[Student, bool]:
    st = find_student(s, student_number)
    if st is not None:
        return st, False
    return add_student(s, student_number, name or student_number, consent=consent, actor=actor), True



def enroll_in_course(s: Session, course: Course, student: Student, actor: str = "system") -> bool:
    """Put a student on a course roster. Returns False if already there."""
    if s.get(Enrollment, (course.id, student.id)):
        return False
    s.add(Enrollment(course_id=course.id, student_id=student.id))
    s.flush()
    audit(s, actor, "roster.add", "course", course.code, student=student.student_number)
    return True


def roster(s: Session, course: Course) -> Sequence[Student]:
    q = (select(Student).join(Enrollment, Enrollment.student_id == Student.id)
         .where(Enrollment.course_id == course.id).order_by(Student.student_number))
    return s.scalars(q).all()


def list_students(s: Session) -> Sequence[Student]:
    return s.scalars(select(Student).order_by(Student.student_number)).all()


# --- face samples / gallery -------------------------------------------------------------------

def accepted_samples(s: Session, student: Student, model_name: str | None = None) -> Sequence[FaceSample]:
    q = select(FaceSample).where(FaceSample.student_id == student.id, FaceSample.accepted.is_(True))
    if model_name:
        q = q.where(FaceSample.model_name == model_name)
    return s.scalars(q.order_by(FaceSample.id)).all()


def identity_gallery(s: Session, model_name: str) -> tuple[list[int], np.ndarray]:
    """(student id per row, embeddings) of every accepted ``model_name`` sample of a consenting
    student, school-wide: what a new enrollment photo is checked against (own student and others)."""
    q = (select(FaceSample.student_id, FaceSample.embedding)
         .join(Student, FaceSample.student_id == Student.id)
         .where(FaceSample.accepted.is_(True), FaceSample.model_name == model_name,
                FaceSample.embedding.is_not(None), Student.consent_given_at.is_not(None))
         .order_by(FaceSample.id))
    rows = s.execute(q).all()
    if not rows:
        return [], np.zeros((0, 0), np.float32)
    return [r[0] for r in rows], np.stack([from_blob(r[1]) for r in rows])


def sample_hashes(s: Session) -> list[tuple[int, int, str | None, str | None]]:
    """(sample id, student id, content sha256, perceptual hash) of every sample with a hash,
    any status and any student: the duplicate check compares a new photo against all of them."""
    q = (select(FaceSample.id, FaceSample.student_id, FaceSample.content_sha256, FaceSample.phash)
         .where((FaceSample.content_sha256.is_not(None)) | (FaceSample.phash.is_not(None)))
         .order_by(FaceSample.id))
    return [(r[0], r[1], r[2], r[3]) for r in s.execute(q).all()]


def pending_samples(s: Session, student_ids: Sequence[int] | None = None) -> Sequence[FaceSample]:
    """Samples held for review, oldest first (of ``student_ids`` only, when given)."""
    q = select(FaceSample).where(FaceSample.status == SampleStatus.PENDING)
    if student_ids is not None:
        q = q.where(FaceSample.student_id.in_(list(student_ids) or [-1]))
    return s.scalars(q.order_by(FaceSample.id)).all()


def review_sample(s: Session, sample: FaceSample, status: SampleStatus, actor: str, reason: str | None = None) -> None:
    """Record a reviewer's decision on a pending sample (audited as ``sample.accept``/``sample.reject``)."""
    if sample.status != SampleStatus.PENDING:
        raise ValueError(f"face sample {sample.id} is {sample.status.value}, not pending review")
    if status == SampleStatus.REJECTED and not (reason or "").strip():
        raise ValueError("a rejection needs a reason")
    before = sample.reject_reason
    note = (reason or "").strip()[:500] or None
    sample.status = status
    sample.reject_reason = note if status == SampleStatus.REJECTED else None  # shown as "why not used"
    audit(s, actor, f"sample.{'accept' if status == SampleStatus.ACCEPTED else 'reject'}", "student",
          sample.student.student_number, sample=sample.id, held_because=before, reason=note)


def _roster_samples(course: Course, model_name: str, *columns: Any) -> Any:
    """``select(student_number, *columns)`` over the accepted ``model_name`` samples of the
    course's consenting students: the one filter every gallery query shares."""
    return (select(Student.student_number, *columns)
            .join(FaceSample, FaceSample.student_id == Student.id)
            .join(Enrollment, Enrollment.student_id == Student.id)
            .where(Enrollment.course_id == course.id, FaceSample.accepted.is_(True),
                   FaceSample.model_name == model_name, Student.consent_given_at.is_not(None)))


def gallery_arrays(s: Session, course: Course, model_name: str) -> tuple[list[str], np.ndarray]:
    """Every accepted sample embedding of the course roster made by ``model_name``.

    Returns (student_number per row, embeddings (N, d) float32). Samples made by another
    model are left out: matching never mixes models.
    """
    q = (_roster_samples(course, model_name, FaceSample.embedding)
         .where(FaceSample.embedding.is_not(None))
         .order_by(Student.student_number, FaceSample.id))
    rows = s.execute(q).all()
    if not rows:
        return [], np.zeros((0, 0), np.float32)
    return [r[0] for r in rows], np.stack([from_blob(r[1]) for r in rows])


def classroom_arrays(s: Session, course: Course, model_name: str) -> tuple[list[str], np.ndarray]:
    """The classroom templates (``vision.templates``) of the roster's accepted ``model_name``
    samples, under the same filters as :func:`gallery_arrays`: (student_number per row, (N, d))."""
    q = (_roster_samples(course, model_name, FaceTemplate.embedding, FaceTemplate.views)
         .join(FaceTemplate, FaceTemplate.sample_id == FaceSample.id)
         .order_by(Student.student_number, FaceSample.id))
    ids: list[str] = []
    blocks = []
    for sn, blob, views in s.execute(q).all():
        block = from_blob(blob).reshape(int(views), -1)
        ids += [sn] * len(block)
        blocks.append(block)
    if not blocks:
        return [], np.zeros((0, 0), np.float32)
    return ids, np.concatenate(blocks)


def sample_counts(s: Session, course: Course) -> dict[str, int]:
    q = (select(Student.student_number, func.count(FaceSample.id))
         .join(Enrollment, Enrollment.student_id == Student.id)
         .outerjoin(FaceSample, (FaceSample.student_id == Student.id) & FaceSample.accepted.is_(True))
         .where(Enrollment.course_id == course.id).group_by(Student.student_number))
    return {sn: int(n) for sn, n in s.execute(q).all()}


# --- sessions and attendance ------------------------------------------------------------------

def sessions_of(s: Session, course: Course | None = None, since: datetime | None = None) -> Sequence[ClassSession]:
    q = select(ClassSession).order_by(ClassSession.started_at.desc())
    if course is not None:
        q = q.where(ClassSession.course_id == course.id)
    if since is not None:
        q = q.where(ClassSession.started_at >= since)
    return s.scalars(q).all()


def override_status(s: Session, record: AttendanceRecord, final_status: str, actor: str, reason: str) -> None:
    """Instructor override: keeps the automatic status, records who, when and why."""
    from aas_core.domain.attendance import Status

    Status(final_status)  # ValueError on an unknown status
    if not reason.strip():
        raise ValueError("an override needs a reason")
    old = record.final_status
    record.final_status = final_status
    record.overridden_by = actor
    record.override_reason = reason.strip()
    record.updated_at = utcnow()
    audit(s, actor, "attendance.override", "attendance", record.id, session=record.session_id,
          student=record.student.student_number, old=old, new=final_status, reason=reason.strip())


def negatives_arrays(s: Session, course: Course, model_name: str) -> dict[str, np.ndarray]:
    """Per roster student, the embeddings (made by ``model_name``) of the faces instructors said
    were *not* them (standing corrections, ``FaceCorrection``): {student_number: (k, d)}.

    A correction counts across courses (it is a fact about the student's face, wherever it was
    made); one whose observation lost its embedding (erasure, retention purge) no longer counts.
    """
    q = (select(Student.student_number, FaceObservation.embedding)
         .join(FaceCorrection, FaceCorrection.not_student_id == Student.id)
         .join(FaceObservation, FaceObservation.id == FaceCorrection.observation_id)
         .join(Enrollment, Enrollment.student_id == Student.id)
         .where(Enrollment.course_id == course.id, FaceCorrection.undone_at.is_(None),
                FaceObservation.model_name == model_name, FaceObservation.embedding.is_not(None))
         .order_by(Student.student_number, FaceCorrection.id))
    out: dict[str, list[np.ndarray]] = {}
    for number, blob in s.execute(q).all():
        out.setdefault(number, []).append(from_blob(blob))
    return {k: np.stack(v) for k, v in out.items()}
