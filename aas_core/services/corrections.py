"""Corrections that teach: "that face is not X" becomes a negative example for X.

When an instructor says a face the matcher named X is not X (reassigning it to Y with
``review.correct_face``, or just rejecting the name with :func:`reject_face`), a
``FaceCorrection`` row keeps that face as a negative for X. Every later match of X whose face is
closer to one of X's negatives than to X's own samples is vetoed
(``vision.matching.veto_by_negatives``): the face stays unknown and X is "could not tell" in
that snapshot, so the review asks a person instead of the matcher repeating the mistake.
Positives come the other way, only through the existing gates: ``correct_face(...,
add_to_gallery=True)`` enrolls the crop into Y's gallery if Y consented and the crop passes the
quality and identity gates (``FaceSample.source == "correction"``).

A correction references the observation and uses its embedding (never a copy), so erasure,
withdrawal and the retention purge, which null observation embeddings, retire it too.
Instructors see and undo the corrections of their own courses; admins all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aas_core.db import repo, session_scope
from aas_core.db.models import (
    ClassSession,
    FaceCorrection,
    FaceObservation,
    FaceSample,
    SampleStatus,
    Snapshot,
    Student,
    utcnow,
)
from aas_core.services.auth import AccessDenied, AuthUser, can_manage_course, require_course, require_student_access
from aas_core.services.sessions import SessionOutcome, SessionService


def record(s: Session, observation: FaceObservation, not_student: Student, actor: str,
           assigned: Student | None = None) -> FaceCorrection:
    """Keep ``observation`` as a negative for ``not_student`` (audited). One standing correction
    per (face, student): repeating it returns the existing one."""
    existing = s.scalar(select(FaceCorrection).where(FaceCorrection.observation_id == observation.id,
                                                     FaceCorrection.not_student_id == not_student.id,
                                                     FaceCorrection.undone_at.is_(None)))
    if existing is not None:
        existing.assigned_student_id = assigned.id if assigned is not None else existing.assigned_student_id
        return existing
    c = FaceCorrection(observation_id=observation.id, not_student_id=not_student.id,
                       assigned_student_id=assigned.id if assigned is not None else None, created_by=actor)
    s.add(c)
    s.flush()
    repo.audit(s, actor, "face.not_student", "correction", c.id, observation=observation.id,
               student=not_student.student_number, assigned=assigned.student_number if assigned else None)
    return c


def reject_face(svc: SessionService, user: AuthUser, observation_id: int) -> SessionOutcome:
    """"That face is not X": the face becomes unknown, is kept as a negative for X, and the
    session is decided again (X loses this sighting; a person said so)."""
    with session_scope(svc.url) as s:
        o = s.get(FaceObservation, observation_id)
        if o is None:
            raise repo.NotFound(f"no face observation {observation_id}")
        snap = o.snapshot
        require_course(user, snap.session.course)
        if o.student_id is None:
            raise ValueError("this face is not named: there is nothing to reject")
        wrong = s.get(Student, o.student_id)
        if o.embedding is None:
            raise ValueError("this face's embedding is no longer stored (retention or erasure): "
                             "it can be unnamed but cannot teach the matcher")
        record(s, o, wrong, user.username)
        o.student_id, o.similarity, o.match_source = None, None, "rejected"
        session_id = snap.session_id
    return svc.finalize(session_id, actor=user.username)


@dataclass(frozen=True)
class CorrectionRow:
    id: int
    course: str
    session_id: int
    made_at: datetime
    made_by: str
    assigned_to: str | None  # who the face was said to be instead
    undone: bool
    still_counts: bool  # False once the face's embedding is gone (erasure, retention)


@dataclass(frozen=True)
class GalleryCorrections:
    """What stands behind a student's gallery: corrections against them, faces added by correction."""

    student: str
    negatives: list[CorrectionRow]
    added_from_corrections: int

    @property
    def standing(self) -> int:
        return sum(1 for c in self.negatives if not c.undone and c.still_counts)


def for_student(url: str, user: AuthUser, student_number: str) -> GalleryCorrections:
    """The corrections against ``student_number`` an instructor may see (their own courses';
    admins: all) and how many of the student's accepted samples came from corrections."""
    with session_scope(url) as s:
        student = repo.get_student(s, student_number)
        require_student_access(user, student)
        if user.role.value == "student":
            raise AccessDenied("corrections show other people's faces: instructors and admins only")
        rows = s.execute(
            select(FaceCorrection, ClassSession, FaceObservation.embedding.is_not(None))
            .join(FaceObservation, FaceObservation.id == FaceCorrection.observation_id)
            .join(Snapshot, Snapshot.id == FaceObservation.snapshot_id)
            .join(ClassSession, ClassSession.id == Snapshot.session_id)
            .where(FaceCorrection.not_student_id == student.id)
            .order_by(FaceCorrection.created_at.desc(), FaceCorrection.id.desc())).all()
        out = [CorrectionRow(c.id, sess.course.code, sess.id, c.created_at, c.created_by,
                             c.assigned_student.student_number if c.assigned_student else None,
                             c.undone_at is not None, bool(has_embedding))
               for c, sess, has_embedding in rows if can_manage_course(user, sess.course)]
        added = s.scalar(select(func.count(FaceSample.id)).where(
            FaceSample.student_id == student.id, FaceSample.source == "correction",
            FaceSample.status == SampleStatus.ACCEPTED)) or 0
        return GalleryCorrections(student.student_number, out, int(added))


def undo(url: str, user: AuthUser, correction_id: int) -> None:
    """Withdraw a correction: the face no longer counts as a negative (audited; the row stays).
    The face itself keeps the name it has now; correct it again if that is wrong too."""
    with session_scope(url) as s:
        c = s.get(FaceCorrection, correction_id)
        if c is None:
            raise repo.NotFound(f"no correction {correction_id}")
        require_course(user, c.observation.snapshot.session.course)
        if c.undone_at is not None:
            return
        c.undone_at, c.undone_by = utcnow(), user.username
        repo.audit(s, user.username, "face.not_student.undo", "correction", c.id,
                   student=c.not_student.student_number)
