"""Students see their own evidence and dispute a status; instructors resolve disputes.

A student sees, per session of their courses, their final status and the crops of *their own*
face that support it (faces named as them, by the matcher, seat continuity or a person), never
a snapshot or anyone else's face. They may dispute a status with a message (one open dispute
per session); the instructor sees it in the review with the same evidence and resolves it:
*upheld* (the status is changed through the ordinary override, with the reason) or *rejected*
(the status stands, with the reason). The student sees the outcome. Everything is audited;
the audit keeps ids and statuses, not the student's message (free text about a person stays
in one place, which erasure deletes with the student).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select

from aas_core.db import repo, session_scope
from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    Dispute,
    FaceObservation,
    Role,
    Snapshot,
    Student,
    utcnow,
)
from aas_core.domain.attendance import Status
from aas_core.media.store import ImageStore
from aas_core.services.auth import AccessDenied, AuthUser, require_course

MAX_MESSAGE = 1000
MAX_REASON = 480  # "dispute upheld: " + reason fits the override reason (500)
OPEN, UPHELD, REJECTED = "open", "upheld", "rejected"


@dataclass(frozen=True)
class MySession:
    """One session as its student sees it."""

    session_id: int
    course: str
    started_at: datetime
    status: str
    overridden: bool
    evidence: list[int]  # observation ids of the student's own faces, by snapshot
    dispute: DisputeView | None


@dataclass(frozen=True)
class DisputeView:
    id: int
    session_id: int
    student: str
    student_name: str
    message: str
    status: str
    status_before: str
    status_after: str | None
    created_at: datetime
    resolved_by: str | None
    resolution: str | None
    evidence: list[int]


def _me(s, user: AuthUser) -> Student:  # type: ignore[no-untyped-def]
    if user.role != Role.STUDENT or not user.student_number:
        raise AccessDenied("only a student account linked to a student record can do this")
    return repo.get_student(s, user.student_number)


def _evidence(s, session_id: int, student_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    return list(s.scalars(select(FaceObservation.id).join(Snapshot, Snapshot.id == FaceObservation.snapshot_id)
                          .where(Snapshot.session_id == session_id, FaceObservation.student_id == student_id,
                                 FaceObservation.crop_path.is_not(None))
                          .order_by(Snapshot.index, FaceObservation.id)))


def _view(s, d: Dispute) -> DisputeView:  # type: ignore[no-untyped-def]
    return DisputeView(d.id, d.session_id, d.student.student_number, d.student.name, d.message, d.status,
                       d.status_before, d.status_after, d.created_at, d.resolved_by, d.resolution,
                       _evidence(s, d.session_id, d.student_id))


def my_sessions(url: str, user: AuthUser, limit: int = 50) -> list[MySession]:
    """The signed-in student's sessions (decided ones), newest first, with their own evidence."""
    with session_scope(url) as s:
        me = _me(s, user)
        rows = s.execute(select(AttendanceRecord, ClassSession)
                         .join(ClassSession, ClassSession.id == AttendanceRecord.session_id)
                         .where(AttendanceRecord.student_id == me.id)
                         .order_by(ClassSession.started_at.desc(), ClassSession.id.desc()).limit(limit)).all()
        disputes = {d.session_id: d for d in s.scalars(select(Dispute).where(Dispute.student_id == me.id)
                                                       .order_by(Dispute.id))}
        return [MySession(sess.id, sess.course.code, sess.started_at, rec.final_status, rec.overridden_by is not None,
                          _evidence(s, sess.id, me.id),
                          _view(s, disputes[sess.id]) if sess.id in disputes else None)
                for rec, sess in rows]


def my_face(url: str, store: ImageStore, user: AuthUser, observation_id: int) -> np.ndarray:
    """A crop of the signed-in student's own face; anyone else's face is refused."""
    with session_scope(url) as s:
        me = _me(s, user)
        o = s.get(FaceObservation, observation_id)
        if o is None or o.student_id != me.id or not o.crop_path:
            # The same answer whether it exists or not: no probing other people's faces.
            raise AccessDenied("this is not a face of yours")
        rel = o.crop_path
    return store.load(rel)


def open_dispute(url: str, user: AuthUser, session_id: int, message: str) -> DisputeView:
    """Dispute the signed-in student's status in ``session_id`` (one open dispute per session)."""
    message = (message or "").strip()
    if not message:
        raise ValueError("say why the status is wrong (for example: where you sat, when you arrived)")
    if len(message) > MAX_MESSAGE:
        raise ValueError(f"the message is {len(message)} characters long; at most {MAX_MESSAGE}")
    with session_scope(url) as s:
        me = _me(s, user)
        rec = s.scalar(select(AttendanceRecord).where(AttendanceRecord.session_id == session_id,
                                                      AttendanceRecord.student_id == me.id))
        if rec is None:
            raise AccessDenied("you have no attendance record in this session")
        if s.scalar(select(Dispute).where(Dispute.session_id == session_id, Dispute.student_id == me.id,
                                          Dispute.status == OPEN)) is not None:
            raise ValueError("you already have an open dispute for this session")
        d = Dispute(session_id=session_id, student_id=me.id, message=message, status=OPEN,
                    status_before=rec.final_status)
        s.add(d)
        s.flush()
        repo.audit(s, user.username, "dispute.open", "dispute", d.id, session=session_id, status=rec.final_status)
        return _view(s, d)


def session_disputes(url: str, user: AuthUser, session_id: int, *, open_only: bool = False) -> list[DisputeView]:
    """The disputes of one session, for its course's instructor (or an admin), with the evidence."""
    with session_scope(url) as s:
        sess = s.get(ClassSession, session_id)
        if sess is None:
            raise repo.NotFound(f"no session {session_id}")
        require_course(user, sess.course)
        q = select(Dispute).where(Dispute.session_id == session_id)
        if open_only:
            q = q.where(Dispute.status == OPEN)
        return [_view(s, d) for d in s.scalars(q.order_by(Dispute.id))]


def open_disputes(url: str, user: AuthUser) -> list[DisputeView]:
    """Open disputes of every course ``user`` manages, oldest first (the instructor's to-do list)."""
    with session_scope(url) as s:
        out = []
        for d in s.scalars(select(Dispute).where(Dispute.status == OPEN).order_by(Dispute.id)):
            try:
                require_course(user, d.session.course)
            except AccessDenied:
                continue
            out.append(_view(s, d))
        return out


def resolve(url: str, user: AuthUser, dispute_id: int, *, uphold: bool, reason: str,
            new_status: str | None = None) -> DisputeView:
    """Resolve a dispute with a reason: ``uphold`` changes the status to ``new_status`` (an
    override, audited as every override is); otherwise the status stands."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a resolution needs a reason the student will read")
    if len(reason) > MAX_REASON:
        raise ValueError(f"the reason is {len(reason)} characters long; at most {MAX_REASON}")
    with session_scope(url) as s:
        d = s.get(Dispute, dispute_id)
        if d is None:
            raise repo.NotFound(f"no dispute {dispute_id}")
        require_course(user, d.session.course)
        if d.status != OPEN:
            raise ValueError(f"this dispute was already {d.status}")
        rec = s.scalar(select(AttendanceRecord).where(AttendanceRecord.session_id == d.session_id,
                                                      AttendanceRecord.student_id == d.student_id))
        if uphold:
            if new_status is None:
                raise ValueError("upholding a dispute needs the status it should have")
            Status(new_status)  # ValueError on an unknown status
            if rec is None:
                raise ValueError("the student's record in this session is gone")
            repo.override_status(s, rec, new_status, user.username, f"dispute upheld: {reason}")
            d.status_after = new_status
        d.status = UPHELD if uphold else REJECTED
        d.resolved_by, d.resolved_at, d.resolution = user.username, utcnow(), reason
        repo.audit(s, user.username, "dispute.resolve", "dispute", d.id, session=d.session_id, outcome=d.status,
                   status=d.status_after or d.status_before)
        return _view(s, d)


def course_face(url: str, store: ImageStore, user: AuthUser, observation_id: int) -> np.ndarray:
    """A face crop for the instructor of its course (or an admin): disputes and unknown people."""
    from aas_core.services.privacy import observation_crop

    with session_scope(url) as s:
        return observation_crop(s, store, user, observation_id)
