"""Students for the dashboard (and any other caller): who may be seen, one student's detail, adding a
student, consent, enrollment and the photo gallery.

Every function opens its own transaction and checks the user first, with the rules of
:mod:`aas_core.services.auth`: an admin sees and manages everyone; an instructor only the
students on their own courses (and adds students only to a course they manage); a student only
themself. Results are plain dataclasses (no ORM object escapes a transaction). Consent,
withdrawal and erasure are the :mod:`~aas_core.services.privacy` functions run as one unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import FaceSample, Role, SampleStatus, Student
from aas_core.media.store import ImageStore
from aas_core.services import enrollment, in_transaction, privacy
from aas_core.services.auth import (
    AccessDenied,
    AuthUser,
    require_course,
    require_role,
    require_student_access,
    visible_courses,
)
from aas_core.services.enrollment import SampleOutcome

__all__ = ["FILTERS", "PendingSample", "SampleView", "StudentDetail", "StudentList", "create_student", "delete_sample",
           "enroll_photos", "erase_student", "filter_students", "give_consent", "is_student_user", "pending_samples",
           "record_consent_forms", "review_sample", "sample_photo", "student_detail", "student_overview",
           "update_student", "visible_students", "withdraw_consent"]


def is_student_user(user: AuthUser) -> bool:
    """Signed in with the student role (sees and manages only themself)."""
    return user.role == Role.STUDENT and not user.is_admin


# --- reads ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudentList:
    """The students ``user`` may see, as the Students page lists them."""

    rows: list[dict[str, Any]]  # student_id, name, email, courses (those the user may see), consent, samples, held
    names: dict[str, str]  # student number -> name, in student-number order
    course_codes: list[str]  # courses the user may put a new student on (admin: every course)

    @property
    def numbers(self) -> list[str]:
        return list(self.names)


def visible_students(url: str, user: AuthUser) -> StudentList:
    """Admin: every student; instructor: the students on their courses; student: themself only.

    A student account not linked to a student record sees nobody.
    """
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    student_self = is_student_user(user)
    with session_scope(url) as s:
        # samples and courses in two more queries, not two per student (rosters of 600)
        everyone = select(Student).options(selectinload(Student.samples), selectinload(Student.enrollments)) \
            .order_by(Student.student_number)
        if student_self:
            visible = [repo.get_student(s, user.student_number)] if user.student_number else []
            courses = []
        else:
            courses = visible_courses(s, user)
            if user.is_admin:
                visible = list(s.scalars(everyone))
            elif user.role == Role.INSTRUCTOR:
                ids = {e.student_id for c in courses for e in c.enrollments}
                visible = list(s.scalars(everyone.where(Student.id.in_(ids)))) if ids else []
            else:
                visible = []
        shown = {c.id for c in courses}
        rows = [{"student_id": x.student_number, "name": x.name, "email": x.email or "",
                 "courses": ", ".join(sorted(e.course.code for e in x.enrollments
                                             if user.is_admin or student_self or e.course_id in shown)),
                 "consent": x.has_consent, "samples": len({f.image_path for f in x.samples if f.accepted}),
                 "held": len({f.image_path for f in x.samples if f.status == SampleStatus.PENDING})}
                for x in visible]
        # a new student goes on an active course (archived ones keep their records, take no one new)
        return StudentList(rows, {x.student_number: x.name for x in visible},
                           [c.code for c in courses if c.archived_at is None])


#: The Students list's filters: key -> (label, test on a row of ``visible_students``).
FILTERS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "no_consent": ("no consent", lambda r: not r["consent"]),
    "no_photos": ("no photos", lambda r: r["samples"] == 0),
    "pending": ("pending review", lambda r: r["held"] > 0),
}


def filter_students(rows: Sequence[dict[str, Any]], filters: Iterable[str] = (),
                    query: str = "") -> list[dict[str, Any]]:
    """The rows that pass every chosen filter and whose id or name contains ``query`` (any case)."""
    q = query.strip().casefold()
    tests = [FILTERS[f][1] for f in filters]
    return [r for r in rows if all(t(r) for t in tests)
            and (not q or q in r["student_id"].casefold() or q in r["name"].casefold())]


@dataclass(frozen=True)
class SampleView:
    """One face sample (photo) as the gallery shows it, with its review status and reason."""

    id: int
    image_path: str | None
    source: str | None
    face_px: float | None
    blur: float | None
    created_at: datetime
    status: str = SampleStatus.ACCEPTED.value  # accepted | pending | rejected
    reason: str | None = None  # why it is pending or rejected
    model: str | None = None
    added_by: str | None = None

    @classmethod
    def of(cls, x: FaceSample) -> SampleView:
        return cls(x.id, x.image_path, x.source, x.face_px, x.blur, x.created_at, SampleStatus(x.status).value,
                   x.reject_reason, x.model_name, x.added_by)


def _one_per_photo(samples: Iterable[SampleView]) -> list[SampleView]:
    # The same photo is embedded once per model: show it once. Rejected rows have no photo left.
    seen: set[str] = set()
    return [x for x in samples if x.image_path is None or not (x.image_path in seen or seen.add(x.image_path))]


@dataclass(frozen=True)
class StudentDetail:
    student_number: str
    name: str
    has_consent: bool
    consent_given_at: datetime | None
    samples: list[SampleView] = field(default_factory=list)  # every sample, every model and status
    email: str | None = None
    consent_reference: str | None = None  # the signed form behind the consent, when recorded in bulk

    @property
    def photos(self) -> list[SampleView]:
        """Accepted photos (used for recognition), one per stored photo."""
        return _one_per_photo(x for x in self.samples if x.status == SampleStatus.ACCEPTED)

    @property
    def held(self) -> list[SampleView]:
        """Photos held for an instructor's review (not used for recognition)."""
        return _one_per_photo(x for x in self.samples if x.status == SampleStatus.PENDING)

    @property
    def rejected(self) -> list[SampleView]:
        return [x for x in self.samples if x.status == SampleStatus.REJECTED]


def student_detail(url: str, user: AuthUser, student_number: str) -> StudentDetail:
    """Consent and samples (every status) of one student (``AccessDenied`` unless ``user`` may see them)."""
    with session_scope(url) as s:
        student = repo.get_student(s, student_number)
        require_student_access(user, student)
        samples = [SampleView.of(x) for x in privacy.student_samples(s, user, student_number)]
        return StudentDetail(student.student_number, student.name, student.has_consent, student.consent_given_at,
                             samples, student.email, student.consent_reference)


def student_overview(url: str, user: AuthUser, student_number: str) -> dict[str, Any]:
    """One student as plain JSON-ready data (``aas student show --json``): consent, the courses
    ``user`` may see them on, and every face sample with its review status and reason."""
    with session_scope(url) as s:
        student = repo.get_student(s, student_number)
        require_student_access(user, student)
        mine = user.is_admin or is_student_user(user)
        courses = sorted(e.course.code for e in student.enrollments
                         if mine or e.course.instructor_id == user.instructor_id)
        samples = [{"id": x.id, "status": SampleStatus(x.status).value, "reason": x.reject_reason,
                    "source": x.source, "created_at": x.created_at.isoformat(sep=" ", timespec="seconds"),
                    "model": x.model_name, "added_by": x.added_by}
                   for x in privacy.student_samples(s, user, student_number)]
        return {"student_number": student.student_number, "name": student.name,
                "consent": {"given": student.has_consent,
                            "given_at": student.consent_given_at.isoformat(sep=" ", timespec="seconds")
                            if student.consent_given_at else None},
                "courses": courses, "samples": samples}


@dataclass(frozen=True)
class PendingSample:
    """A photo held for review, as the reviewer's queue shows it."""

    id: int
    student_number: str
    name: str
    reason: str | None
    source: str | None
    added_by: str | None
    created_at: datetime
    image_path: str | None = None


def pending_samples(url: str, user: AuthUser, course_code: str | None = None) -> list[PendingSample]:
    """Photos held for review of the students on ``course_code`` (its instructor or an admin), or,
    without a course, on every course ``user`` manages (admin: every held photo), oldest first."""
    require_role(user, Role.INSTRUCTOR)
    with session_scope(url) as s:
        if course_code is not None:
            course = repo.get_course(s, course_code)
            require_course(user, course)
            ids: list[int] | None = [x.id for x in repo.roster(s, course)]
        elif user.is_admin:
            ids = None
        else:
            ids = sorted({e.student_id for c in visible_courses(s, user) for e in c.enrollments})
        return [PendingSample(x.id, x.student.student_number, x.student.name, x.reject_reason, x.source, x.added_by,
                              x.created_at, x.image_path) for x in repo.pending_samples(s, ids)]


def review_sample(url: str, store: ImageStore, user: AuthUser, sample_id: int, *, accept: bool,
                  reason: str | None = None) -> str:
    """Accept (used for recognition from now on) or reject a photo held for review; returns the new status.

    An admin, or an instructor of one of the student's courses; students never review their own
    photos. A rejection needs a reason (the student sees it); the rejected photo and its
    embedding are deleted (it may show someone else), the row stays with the reason and the
    hashes, so the same photo is refused as a duplicate if uploaded again. Audited.
    """
    require_role(user, Role.INSTRUCTOR)
    with session_scope(url) as s:
        sample = s.get(FaceSample, sample_id)
        if sample is None:
            raise repo.NotFound(f"no face sample {sample_id}")
        require_student_access(user, sample.student)
        status = SampleStatus.ACCEPTED if accept else SampleStatus.REJECTED
        repo.review_sample(s, sample, status, user.username, reason)
        if status == SampleStatus.REJECTED:
            store.delete(sample.image_path)  # before the commit: a failed commit never leaves a file without a row
            sample.image_path, sample.embedding = None, None
        return status.value


def sample_photo(url: str, store: ImageStore, user: AuthUser, sample_id: int) -> np.ndarray:
    """The stored photo of a face sample (``privacy.sample_image``: same access rule as the detail)."""
    with session_scope(url) as s:
        return privacy.sample_image(s, store, user, sample_id)


# --- writes --------------------------------------------------------------------------------------

def create_student(url: str, user: AuthUser, student_number: str, name: str, *, email: str | None = None,
                   consent: bool = False, course_code: str | None = None) -> str:
    """Add a student and put them on ``course_code``'s roster, in one transaction. Returns the student id.

    Instructors must name a course they manage (a student of nobody's course would be invisible
    to them); only an administrator may add a student without a course or record consent here
    (otherwise the student records it themself). ``repo.AlreadyExists`` (a ``ValueError``) for a
    duplicate id, ``ValueError`` for an empty one.
    """
    require_role(user, Role.INSTRUCTOR)
    if consent and not user.is_admin:
        raise AccessDenied("only an administrator or the student themself can record consent")
    if not course_code and not user.is_admin:
        raise AccessDenied("instructors add students to one of their courses")
    with session_scope(url) as s:
        course = None
        if course_code:
            course = repo.get_course(s, course_code)
            require_course(user, course)
        new = repo.add_student(s, student_number, name, email=(email or "").strip() or None, consent=consent,
                               actor=user.username)
        if course is not None:
            repo.enroll_in_course(s, course, new, actor=user.username)
        return new.student_number


def delete_sample(url: str, store: ImageStore, user: AuthUser, sample_id: int) -> bool:
    """Delete one face sample (and its photo, every model's row of it). False if it is already gone."""
    with session_scope(url) as s:
        sample = s.get(FaceSample, sample_id)
        if sample is None:
            return False
        require_student_access(user, sample.student)
        enrollment.delete_sample(s, sample, store, user.username)
        return True


def enroll_photos(url: str, user: AuthUser, student_number: str, images: Iterable[tuple[str, np.ndarray | Exception]],
                  pipeline: Any, store: ImageStore, settings: Settings, *, source: str = "upload",
                  progress: Callable[[int, int, str], None] | None = None, total: int | None = None,
                  each: Callable[[SampleOutcome, np.ndarray | Exception], None] | None = None) -> list[SampleOutcome]:
    """Enroll photos of a student one by one (``progress(i, n, name)`` and ``each(outcome, image)``
    after each), all in one transaction.

    ``images`` may be a generator: it is consumed lazily, one decoded photo at a time (``n`` is
    ``total`` or its length). Anyone who may see the student may enroll photos of them, with
    their role (a student's own first photos are held for review, see ``enroll_images``);
    ``enroll_images`` refuses without recorded consent.
    """
    n = total if total is not None else (len(images) if isinstance(images, Sized) else 0)
    done = 0

    def after(outcome: SampleOutcome, image: np.ndarray | Exception) -> None:
        nonlocal done
        done += 1
        if each:
            each(outcome, image)
        if progress:
            progress(done, max(n, done), outcome.name)

    with session_scope(url) as s:
        student: Student = repo.get_student(s, student_number)
        require_student_access(user, student)
        return enrollment.enroll_images(s, student, images, pipeline, store, settings, source=source,
                                        actor=user.username, added_by=user.role, each=after)


def update_student(url: str, user: AuthUser, student_number: str, *, name: str, email: str | None) -> list[str]:
    """Correct a student's name and e-mail (an admin, or an instructor of one of their courses;
    students: only themselves). Returns the changed fields; audited as ``student.update``."""
    from aas_core.services.roster import _EMAIL, MAX_LEN

    name, email = (name or "").strip(), (email or "").strip() or None
    if not name:
        raise ValueError("a student needs a name")
    if len(name) > MAX_LEN["name"]:
        raise ValueError(f"the name is longer than {MAX_LEN['name']} characters")
    if email is not None and (len(email) > MAX_LEN["email"] or not _EMAIL.match(email)):
        raise ValueError(f"{email!r} is not an e-mail address")
    with session_scope(url) as s:
        student = repo.get_student(s, student_number)
        require_student_access(user, student)
        changed = [f for f, v in (("name", name), ("email", email)) if getattr(student, f) != v]
        if changed:
            student.name, student.email = name, email
            # the fields, not the old values: an erasure scrubs the audit by the student's current name
            repo.audit(s, user.username, "student.update", "student", student.student_number, fields=changed)
        return changed


def record_consent_forms(url: str, user: AuthUser, forms: Sequence[privacy.ConsentForm]) -> privacy.ConsentResult:
    """``privacy.record_consent_forms`` as one transaction (administrators, by the consent policy)."""
    return in_transaction(url, privacy.record_consent_forms, user, forms)


def give_consent(url: str, user: AuthUser, student_number: str) -> None:
    """``privacy.give_consent`` as one transaction (admin, or the student themself)."""
    in_transaction(url, privacy.give_consent, user, student_number)


def withdraw_consent(url: str, store: ImageStore, user: AuthUser, student_number: str) -> dict[str, int]:
    """``privacy.withdraw_consent`` as one transaction; counts of what was deleted."""
    return in_transaction(url, privacy.withdraw_consent, store, user, student_number)


def erase_student(url: str, store: ImageStore, user: AuthUser, student_number: str) -> dict[str, int]:
    """``privacy.erase_student`` as one transaction (admin only); counts of what was deleted."""
    return in_transaction(url, privacy.erase_student, store, user, student_number)
