"""Privacy services: consent, erasure, retention, export and access-checked reads.

Every function here takes the signed-in :class:`~aas_core.services.auth.AuthUser`, checks it with the
rules in :mod:`aas_core.services.auth` *before* touching data, and writes an audit row
(:func:`aas_core.db.repo.audit`), so the CLI and the dashboard enforce the same policy.

Who may do what
---------------
==========================  =========================================================
``give_consent``            admin, or the student themself (nobody consents for others)
``record_consent_forms``    admin only: signed consent forms recorded in bulk (a selection or a
                            CSV of student id, date signed and form reference)
``withdraw_consent``        admin, the student themself, or an instructor of one of the
                            student's courses (recording a withdrawal the student asked for)
``erase_student``           admin only (right-to-erasure requests go through an admin)
``purge_old_media``         admin only
``export_attendance``       admin: any course; instructor: own courses; student: own rows
``student_records``         admin; instructor: the student's rows in *their* courses only;
                            student: themself only
``student_samples`` /       admin; instructor of one of the student's courses;
``sample_image``            student: their own samples only
``course_sessions``         admin; instructor: own courses only (students: never)
``snapshot_image`` /        admin; instructor of the session's course (students never see
``observation_crop``        classroom snapshots or other people's faces)
==========================  =========================================================

Files and transactions
----------------------
Functions take an open ``Session`` and leave the commit to the caller (``session_scope``).
Image files are deleted *before* the caller commits: if the commit then fails, rows point
at files that no longer exist (a retry finishes the job), which is the safe way round: the
opposite order could leave biometric files on disk that no row refers to any more.
"""

from __future__ import annotations

import csv
import io
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, event, or_, select
from sqlalchemy.orm import Session

from aas_core.db import repo
from aas_core.db.models import (
    AttendanceRecord,
    AuditLog,
    CheckIn,
    ClassSession,
    Enrollment,
    FaceObservation,
    FaceSample,
    Role,
    Snapshot,
    SnapshotStatus,
    Student,
    User,
    utcnow,
)
from aas_core.media.store import ImageStore
from aas_core.services.auth import AccessDenied, AuthUser, require_course, require_role, require_student_access

log = logging.getLogger(__name__)

__all__ = [
    "AccessDenied",
    "EXPORT_COLUMNS",
    "black_out",
    "checkin_crop",
    "course_gallery",
    "course_gallery_version",
    "course_sessions",
    "erase_student",
    "export_attendance",
    "export_csv",
    "give_consent",
    "parse_consent_csv",
    "record_consent_forms",
    "observation_crop",
    "purge_old_media",
    "sample_image",
    "snapshot_image",
    "stored_snapshots",
    "student_records",
    "student_samples",
    "sweep_orphan_files",
    "withdraw_consent",
]

EXPORT_COLUMNS = ("course", "session_id", "started_at", "student_number", "name", "auto_status", "final_status",
                  "overridden_by", "override_reason")


# --- helpers --------------------------------------------------------------------------------

def _is_self(user: AuthUser, student: Student) -> bool:
    return user.role == Role.STUDENT and user.student_number is not None \
        and user.student_number == student.student_number


def _delete_files(store: ImageStore, paths: set[str]) -> int:
    return sum(store.delete(p) for p in sorted(paths) if p)


def _scrub_observations(s: Session, store: ImageStore, obs: Sequence[FaceObservation]) -> tuple[int, int]:
    """Delete the crop files of ``obs`` and null their paths and embeddings. Returns (files, embeddings)."""
    paths: set[str] = set()
    embeddings = 0
    for o in obs:
        paths.update(p for p in (o.crop_path, o.enhanced_path) if p)
        embeddings += o.embedding is not None
        o.crop_path = None
        o.enhanced_path = None
        o.embedding = None
    s.flush()
    return _delete_files(store, paths), embeddings


def _scrub_checkins(s: Session, store: ImageStore, rows: Sequence[CheckIn]) -> int:
    """Delete the selfie crops of self check-ins (``services.checkin``) and null their paths; the
    check-in itself (who, when, similarity) stays like an attendance fact. Returns files deleted."""
    paths = {c.crop_path for c in rows if c.crop_path}
    for c in rows:
        c.crop_path = None
    s.flush()
    return _delete_files(store, paths)


def _checkins_of(s: Session, student_id: int) -> Sequence[CheckIn]:
    return s.scalars(select(CheckIn).where(CheckIn.student_id == student_id).with_for_update()).all()


#: Margin around a face box blacked out on erasure (hair and ears identify people too).
REDACT_MARGIN = 0.25


def black_out(img: np.ndarray, boxes: Iterable[tuple[float, float, float, float]]) -> int:
    """Black out each face box (x1, y1, x2, y2) in ``img`` in place, with :data:`REDACT_MARGIN`.

    The one redaction rule, for erasure (stored snapshots) and for faces of students whose
    consent went during a camera session (``services.observations.withhold_suppressed``).
    Returns how many boxes were blacked out.
    """
    h, w = img.shape[:2]
    done = 0
    for bx1, by1, bx2, by2 in boxes:
        mx, my = (bx2 - bx1) * REDACT_MARGIN, (by2 - by1) * REDACT_MARGIN
        x1, y1 = max(0, int(bx1 - mx)), max(0, int(by1 - my))
        x2, y2 = min(w, int(np.ceil(bx2 + mx))), min(h, int(np.ceil(by2 + my)))
        if x2 > x1 and y2 > y1:
            img[y1:y2, x1:x2] = 0
            done += 1
    return done


def _redact_in_snapshots(s: Session, store: ImageStore, obs: Sequence[FaceObservation]) -> int:
    """Black out the faces in ``obs`` in their stored classroom snapshots. Returns how many."""
    by_snapshot: dict[int, list[FaceObservation]] = {}
    for o in obs:
        by_snapshot.setdefault(o.snapshot_id, []).append(o)
    done = 0
    for snap_id, items in by_snapshot.items():
        snap = s.get(Snapshot, snap_id)
        if snap is None or not snap.image_path:
            continue
        try:
            img = store.load(snap.image_path)
        except FileNotFoundError:
            continue
        done += black_out(img, [(o.x1, o.y1, o.x2, o.y2) for o in items])
        store.overwrite(snap.image_path, img)
    return done


def _observations_of(s: Session, student_id: int) -> Sequence[FaceObservation]:
    # A locking read: on MariaDB it sees rows committed after this transaction's snapshot was
    # taken (a plain SELECT would not, and their crops would survive the withdrawal).
    return s.scalars(select(FaceObservation).where(FaceObservation.student_id == student_id)
                     .with_for_update()).all()


def _delete_samples(s: Session, store: ImageStore, student: Student) -> tuple[int, int]:
    """Delete every face sample row of ``student`` and their files. Returns (rows, files)."""
    # Locking read (see _observations_of); on MariaDB it also gap-locks the student's range of
    # the student_id index, so no sample of theirs can be inserted until this commits.
    samples = s.scalars(select(FaceSample).where(FaceSample.student_id == student.id).with_for_update()).all()
    paths = {x.image_path for x in samples if x.image_path}
    # A file is removed only when no *other* student's row refers to it (never the case in
    # practice: sample files are per upload; this guards against hand-made data).
    shared = set(s.scalars(select(FaceSample.image_path).where(FaceSample.image_path.in_(paths),
                                                              FaceSample.student_id != student.id)).all()) if paths else set()
    for x in samples:
        s.delete(x)
    s.flush()
    s.expire(student, ["samples"])
    return len(samples), _delete_files(store, paths - shared)


# --- locking and the after-commit sweep ------------------------------------------------------------

def _lock_student(s: Session, student_number: str) -> Student:
    """The student row, locked until the caller commits (``SELECT ... FOR UPDATE``).

    Enrollment and this module serialise on this row: an enrollment that re-checks consent
    under the same lock waits for a withdrawal or erasure to commit and then finds no consent
    (or no student); on MariaDB a sample insert also needs a shared lock on this row (foreign
    key check) and so waits too. ``populate_existing``: a row the caller read earlier in this
    transaction is refreshed with what the lock saw.
    """
    student = s.scalar(select(Student).where(Student.student_number == student_number).with_for_update()
                       .execution_options(populate_existing=True))
    if student is None:
        raise repo.NotFound(f"no student with id {student_number!r}")
    return student


def _take_write_lock(s: Session, student: Student) -> None:
    """Clear consent and flush at once, before anything else is read.

    This first write is also the lock SQLite has instead of ``FOR UPDATE`` (it ignores that):
    from here on no other writer can commit until this transaction ends, so every read below
    sees all samples and crops committed so far (the old order, read then write, missed a sample
    an enrollment committed in between, and its file outlived the student).
    """
    student.consent_given_at = None
    student.consent_reference = None  # the form no longer stands for anything
    s.flush()


def _sweep_after_commit(s: Session, store: ImageStore, student_id: int, student_number: str,
                        course_ids: set[int]) -> None:
    """Once ``s`` commits, remove what writers that read consent before this change committed
    around it: samples (rows + files) and matched observations' crops of a student who still has
    no consent (or no longer exists), and top-match entries naming them.

    Belt and braces: an enrollment that re-checks consent under the student row lock, or a
    camera session that read its gallery before the withdrawal, cannot slip anything in under
    the locks above, but one committing just as this transaction does would otherwise leave
    biometric files behind until the next erasure. Runs in its own transaction; a failure is
    logged, never raised (the withdrawal itself is already committed).
    """
    bind = s.get_bind()

    def sweep(_session: Session) -> None:
        try:
            with Session(bind=bind, expire_on_commit=False) as t, t.begin():
                st = t.scalar(select(Student).where(Student.id == student_id).with_for_update())
                if st is not None and st.has_consent:
                    return  # consent given again meanwhile: what is there now is theirs to keep
                files = 0
                if st is not None:
                    files += _delete_samples(t, store, st)[1]
                files += _scrub_observations(t, store, _observations_of(t, student_id))[0]
                files += _scrub_checkins(t, store, _checkins_of(t, student_id))
                dropped = _drop_top_matches(t, student_number, course_ids) if st is None else 0
                if files or dropped:
                    log.warning("removed %d file(s) and %d top-match entries committed concurrently with a "
                                "consent withdrawal or erasure", files, dropped)
        except Exception:  # noqa: BLE001 - after the commit: report, do not undo the withdrawal
            log.exception("sweep after consent withdrawal / erasure failed")

    event.listen(s, "after_commit", sweep, once=True)


# --- consent ----------------------------------------------------------------------------------

def give_consent(s: Session, user: AuthUser, student_number: str) -> Student:
    """Record the student's consent to face enrollment (admin, or the student themself)."""
    student = repo.get_student(s, student_number)
    if not (user.is_admin or _is_self(user, student)):
        raise AccessDenied("only the student themself or an administrator can record consent")
    if not student.has_consent:
        student.consent_given_at = utcnow()
    repo.audit(s, user.username, "consent.give", "student", student.student_number)
    return student


@dataclass(frozen=True)
class ConsentForm:
    """One signed consent form: whose, when it was signed, its reference (e.g. "form 2026-014")."""

    student_number: str
    signed_on: date | None = None  # None: today
    reference: str | None = None
    line: int = 0  # line in the CSV it came from (0: picked on the page)


@dataclass
class ConsentResult:
    recorded: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # consent was on record already: left as it was
    refused: list[str] = field(default_factory=list)  # "s9: no such student", with the reason


def record_consent_forms(s: Session, user: AuthUser, forms: Sequence[ConsentForm]) -> ConsentResult:
    """Record signed consent forms in bulk (the policy: an administrator records consent for others).

    Each student's consent date is the form's date (today when none), its reference is stored with
    it, and every recording is audited as ``consent.give`` (with the date, the reference and
    ``bulk``). A student who consented already is left as is; an unknown id, a date in the future
    or a repeated id is refused with the reason, without stopping the others.
    """
    if not user.is_admin:
        raise AccessDenied("consent for others is recorded by an administrator, from the signed forms; "
                           "students record their own consent on their page")
    out = ConsentResult()
    today = utcnow().date()
    seen: set[str] = set()
    for f in forms:
        sn = f.student_number.strip()
        where = f"line {f.line}: " if f.line else ""
        if sn in seen:
            out.refused.append(f"{where}{sn}: listed twice")
            continue
        seen.add(sn)
        if f.signed_on is not None and f.signed_on > today:
            out.refused.append(f"{where}{sn}: signed on {f.signed_on:%Y-%m-%d}, a date in the future")
            continue
        student = repo.find_student(s, sn)
        if student is None:
            out.refused.append(f"{where}{sn}: no such student")
            continue
        if student.has_consent:
            out.already.append(sn)
            continue
        signed = datetime.combine(f.signed_on, datetime.min.time()) if f.signed_on else utcnow()
        student.consent_given_at = signed
        student.consent_reference = (f.reference or "").strip()[:120] or None
        repo.audit(s, user.username, "consent.give", "student", sn, bulk=True,
                   signed_on=signed.date().isoformat(), reference=student.consent_reference)
        out.recorded.append(sn)
    return out


def parse_consent_csv(data: bytes | str) -> tuple[list[ConsentForm], list[str]]:
    """A CSV of signed consent forms: ``student_id[,signed_on][,reference]`` (dates as YYYY-MM-DD;
    comma or semicolon separated, header names as in the roster CSV). Returns (forms, one error per
    bad line); ``RosterFileError`` when the file as a whole cannot be read."""
    from aas_core.services.roster import MAX_ROWS, RosterFileError, _decode, _norm_header

    text = _decode(data)
    first = next((ln for ln in text.splitlines() if ln.strip()), None)
    if first is None:
        raise RosterFileError("the file is empty; expected a header line 'student_id,signed_on,reference'")
    reader = csv.reader(io.StringIO(text), delimiter=";" if first.count(";") > first.count(",") else ",")
    header: list[str] | None = None
    forms: list[ConsentForm] = []
    errors: list[str] = []
    for raw in reader:
        if not any(c.strip() for c in raw):
            continue
        if header is None:
            header = [_norm_header(h) for h in raw]
            if "student_id" not in header:
                raise RosterFileError(f"header (line {reader.line_num}) lacks the column student_id; expected "
                                      f"'student_id,signed_on,reference', found {','.join(raw)!r}")
            continue
        if len(forms) + len(errors) >= MAX_ROWS:
            raise RosterFileError(f"more than {MAX_ROWS} rows; split the file")
        cell = dict(zip(header, (c.strip() for c in raw)))
        sn, day, ref = cell.get("student_id", ""), cell.get("signed_on", ""), cell.get("reference", "")
        if not sn:
            errors.append(f"line {reader.line_num}: no student id")
            continue
        try:
            signed = date.fromisoformat(day) if day else None
        except ValueError:
            errors.append(f"line {reader.line_num}: {sn}: signed_on {day!r} is not a date (write YYYY-MM-DD)")
            continue
        if len(ref) > 120:
            errors.append(f"line {reader.line_num}: {sn}: the reference is longer than 120 characters")
            continue
        forms.append(ConsentForm(sn, signed, ref or None, reader.line_num))
    return forms, errors


def withdraw_consent(s: Session, store: ImageStore, user: AuthUser, student_number: str) -> dict[str, int]:
    """Withdraw consent: every face sample, sample file, embedding and face crop of theirs goes.

    Attendance records stay (they are the course's record, not biometric data); face
    observations matched to the student keep their box and match but lose crop files and
    embedding. The student row is locked first (see :func:`_lock_student`) and, after the
    commit, anything of theirs committed concurrently is swept. Returns counts of what was removed.
    """
    student = _lock_student(s, student_number)
    if not (user.is_admin or _is_self(user, student)):
        if user.role != Role.INSTRUCTOR:
            raise AccessDenied("only the student, their instructor or an administrator can withdraw consent")
        require_student_access(user, student)  # instructors: only students on their courses
    _take_write_lock(s, student)
    samples, sample_files = _delete_samples(s, store, student)
    crop_files, obs_embeddings = _scrub_observations(s, store, _observations_of(s, student.id))
    crop_files += _scrub_checkins(s, store, _checkins_of(s, student.id))
    counts = {"samples": samples, "sample_files": sample_files, "crop_files": crop_files,
              "observation_embeddings": obs_embeddings}
    repo.audit(s, user.username, "consent.withdraw", "student", student.student_number, **counts)
    _sweep_after_commit(s, store, student.id, student.student_number, set())
    return counts


# --- erasure ----------------------------------------------------------------------------------

def _student_course_ids(s: Session, student: Student) -> set[int]:
    """Courses whose sessions may name the student in top-match lists: the ones they are on,
    and those of sessions where they have a record or a matched face (removed from a roster since)."""
    ids = set(s.scalars(select(Enrollment.course_id).where(Enrollment.student_id == student.id)))
    ids.update(s.scalars(select(ClassSession.course_id).join(AttendanceRecord, AttendanceRecord.session_id
                                                             == ClassSession.id)
                         .where(AttendanceRecord.student_id == student.id)))
    ids.update(s.scalars(select(ClassSession.course_id).join(Snapshot, Snapshot.session_id == ClassSession.id)
                         .join(FaceObservation, FaceObservation.snapshot_id == Snapshot.id)
                         .where(FaceObservation.student_id == student.id)))
    return ids


def _drop_top_matches(s: Session, student_number: str, course_ids: set[int]) -> int:
    """Remove ``student_number`` from the top-match lists of faces in the given courses' sessions.

    Each list is parsed and compared key by key in Python: a ``LIKE`` on the JSON text misses
    ids that the JSON serialiser stored escaped (``"st\\u00fc-7"`` for ``stü-7``) and matches
    ids that merely contain it. Returns how many entries were removed.
    """
    if not course_ids:
        return 0
    q = (select(FaceObservation).join(Snapshot, FaceObservation.snapshot_id == Snapshot.id)
         .join(ClassSession, Snapshot.session_id == ClassSession.id)
         .where(ClassSession.course_id.in_(course_ids), FaceObservation.top_matches.is_not(None)))
    removed = 0
    for o in s.scalars(q):
        top = o.top_matches
        if not isinstance(top, list):
            continue
        kept = [m for m in top if not (isinstance(m, list | tuple) and m and m[0] == student_number)]
        if len(kept) != len(top):
            removed += len(top) - len(kept)
            o.top_matches = kept
    s.flush()
    return removed


#: Audit actions whose ``details`` name a student (``student=<number>``) although the target is
#: something else (a course, an attendance record, a face). Rows of other actions are about a
#: student only through ``target_id`` or ``actor``, both matched by equality.
AUDIT_ACTIONS_NAMING_STUDENTS = ("roster.add", "roster.remove", "attendance.override", "face.correct", "export")
_REMOVED = object()


def _pseudonymise_audit(s: Session, pseudonym: str, student_number: str, username: str | None, name: str,
                        reasons: set[str]) -> int:
    """Replace the student's id and username by ``pseudonym`` in the audit log, drop free text
    about them (override reasons, anything containing their id, name or username). Returns rows changed.

    The audit trail keeps its shape (who did what, when, to "erased:..."), so counts and the
    sequence of events stay explainable without saying who the person was.
    """
    exact = {v for v in (student_number, username) if v}
    leaky = {v for v in (student_number, username, name, *reasons) if v and v.strip()}
    about_target = and_(AuditLog.target_type == "student", AuditLog.target_id == student_number)
    cond = or_(about_target, AuditLog.action.in_(AUDIT_ACTIONS_NAMING_STUDENTS))
    if username:
        cond = or_(cond, and_(AuditLog.target_type == "user", AuditLog.target_id == username),
                   AuditLog.actor == username)

    def names_them(v: Any) -> bool:
        if isinstance(v, dict):
            return any(names_them(x) for x in v.values())
        if isinstance(v, list):
            return any(names_them(x) for x in v)
        return isinstance(v, str) and v in exact

    def scrub(v: Any) -> Any:
        if isinstance(v, dict):
            out = {k: scrub(x) for k, x in v.items() if k != "reason"}  # free text about them
            return {k: x for k, x in out.items() if x is not _REMOVED}
        if isinstance(v, list):
            return [x for x in (scrub(x) for x in v) if x is not _REMOVED]
        if isinstance(v, str):
            if v in exact:
                return pseudonym
            if any(t in v for t in leaky):
                return _REMOVED
        return v

    changed = 0
    for a in s.scalars(select(AuditLog).where(cond)):
        about = ((a.target_type == "student" and a.target_id == student_number)
                 or (username is not None and (a.actor == username
                                               or (a.target_type == "user" and a.target_id == username)))
                 or names_them(a.details))
        if not about:
            continue  # an export or a roster change of someone else: left exactly as it was
        if a.target_id in exact:
            a.target_id = pseudonym
        if a.actor in exact:
            a.actor = pseudonym
        if a.details:
            a.details = scrub(a.details) or None
        changed += 1
    s.flush()
    return changed


def erase_student(s: Session, store: ImageStore, user: AuthUser, student_number: str) -> dict[str, int]:
    """Delete the student and every image file and embedding of theirs (admin only).

    Removes: face samples (rows + files), crops and embeddings of face observations matched
    to them (the observation rows stay, unassigned, so other students' evidence in the same
    snapshot is intact), their face in the stored classroom snapshots (blacked out, with a
    margin), their entries in other faces' top-match lists, roster entries, attendance
    records and the linked sign-in account. In the audit log their id and username become
    one random pseudonym (``erased:<hex>``, the same in every entry about them, not computable
    from the id) and free text about them (override reasons) is removed; the erasure's own
    audit row carries only the pseudonym and counts. Faces of theirs that were never
    recognised (unknown observations) cannot be told apart and stay until the retention purge.
    """
    require_role(user, Role.ADMIN)
    student = _lock_student(s, student_number)
    _take_write_lock(s, student)
    course_ids = _student_course_ids(s, student)
    samples, sample_files = _delete_samples(s, store, student)
    obs = _observations_of(s, student.id)
    redacted = _redact_in_snapshots(s, store, obs)
    crop_files, obs_embeddings = _scrub_observations(s, store, obs)
    crop_files += _scrub_checkins(s, store, _checkins_of(s, student.id))  # the rows go with the student (FK cascade)
    for o in obs:
        o.student_id = None
        o.similarity = None
    # Other faces' "top matches" lists name the student: drop those entries.
    _drop_top_matches(s, student.student_number, course_ids)
    reasons = {r for r in s.scalars(select(AttendanceRecord.override_reason)
                                    .where(AttendanceRecord.student_id == student.id)) if r}
    records = s.execute(delete(AttendanceRecord).where(AttendanceRecord.student_id == student.id)).rowcount or 0
    account = s.get(User, student.user_id) if student.user_id is not None else None
    pseudonym = "erased:" + secrets.token_hex(6)  # random: a hash of a short student id could be reversed
    _pseudonymise_audit(s, pseudonym, student.student_number, account.username if account else None, student.name,
                        reasons)
    student_id = student.id
    s.delete(student)  # enrollments go by ORM cascade, anything left by the FK cascades
    if account is not None:
        s.delete(account)
    s.flush()
    counts = {"samples": samples, "sample_files": sample_files, "crop_files": crop_files,
              "observation_embeddings": obs_embeddings, "snapshot_faces_redacted": redacted,
              "attendance_records": int(records), "account": int(account is not None)}
    repo.audit(s, user.username, "student.erase", "student", pseudonym, **counts)
    _sweep_after_commit(s, store, student_id, student_number, course_ids)
    return counts


# --- retention --------------------------------------------------------------------------------

def purge_old_media(s: Session, store: ImageStore, user: AuthUser, older_than_days: int) -> dict[str, int]:
    """Delete snapshot images and face crops of sessions started more than N days ago (admin only).

    Files are deleted, their paths nulled, face-observation embeddings nulled. Sessions,
    snapshots rows (status, timings), observation boxes/matches and attendance records stay.
    Returns counts: sessions, snapshot_files, crop_files, observation_embeddings.
    """
    require_role(user, Role.ADMIN)
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int) or older_than_days < 1:
        raise ValueError("older_than_days must be a whole number of days >= 1")
    cutoff = utcnow() - timedelta(days=older_than_days)
    session_ids = s.scalars(select(ClassSession.id).where(ClassSession.started_at < cutoff)).all()
    snap_files = crop_files = embeddings = 0
    if session_ids:
        snaps = s.scalars(select(Snapshot).where(Snapshot.session_id.in_(session_ids))).all()
        paths = {x.image_path for x in snaps if x.image_path}
        for x in snaps:
            x.image_path = None
            if (x.info or {}).get("frames"):  # burst frames still waiting for a worker
                paths |= {p for p in x.info["frames"] if isinstance(p, str)}
                x.info = {k: v for k, v in x.info.items() if k != "frames"}
        obs = s.scalars(select(FaceObservation).join(Snapshot, FaceObservation.snapshot_id == Snapshot.id)
                        .where(Snapshot.session_id.in_(session_ids))).all()
        crop_files, embeddings = _scrub_observations(s, store, obs)
        checkins = s.scalars(select(CheckIn).where(CheckIn.session_id.in_(session_ids))).all()
        crop_files += _scrub_checkins(s, store, checkins)
        snap_files = _delete_files(store, paths)
    counts = {"sessions": len(session_ids), "snapshot_files": snap_files, "crop_files": crop_files,
              "observation_embeddings": embeddings}
    repo.audit(s, user.username, "media.purge", "retention", older_than_days, **counts)
    return counts


#: Folders of the data dir that hold images written by ``ImageStore.save`` (nothing else is swept:
#: the default SQLite database lives in the data dir too).
MEDIA_KINDS = ("samples", "snapshots", "crops", "frames")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".part"}


def _referenced_paths(s: Session, among: set[str] | None = None) -> set[str]:
    """Image paths some row refers to (only those in ``among`` when given: a cheap check of a few)."""
    cols = (FaceSample.image_path, Snapshot.image_path, FaceObservation.crop_path, FaceObservation.enhanced_path,
            CheckIn.crop_path)
    # The lossless burst frames of a snapshot waiting for a worker (aas_core.tasks.work.keep_frames):
    # referenced while the snapshot is still to be processed, deleted by the worker after it.
    found: set[str] = {p for info in s.scalars(select(Snapshot.info).where(Snapshot.status == SnapshotStatus.CAPTURED))
                       for p in ((info or {}).get("frames") or []) if isinstance(p, str)}
    if among is not None:
        found &= among
    if among is None:
        for col in cols:
            found.update(p for p in s.scalars(select(col).where(col.is_not(None))) if p)
        return found
    wanted = sorted(among)
    for i in range(0, len(wanted), 500):  # bounded IN lists
        chunk = wanted[i:i + 500]
        for col in cols:
            found.update(p for p in s.scalars(select(col).where(col.in_(chunk))) if p)
    return found


def _is_media_path(rel: str) -> bool:
    parts = rel.split("/")
    return len(parts) > 1 and parts[0] in MEDIA_KINDS and ".." not in parts and \
        any(rel.lower().endswith(x) for x in _IMAGE_SUFFIXES)


def sweep_orphan_files(s: Session, store: ImageStore, user: AuthUser, *, min_age_s: float = 3600.0,
                       dry_run: bool = False, journal_only: bool = False) -> list[str]:
    """Delete image files under the data dir that no database row refers to (admin only).

    Orphans come from crashes between writing a file and committing its row, or from rows
    deleted by hand; they would otherwise escape retention and erasure. Two sources:

    * the store's pending journal (``ImageStore.pending_entries``): every file is journaled
      before it is written, until its row commits. Files of a journal entry whose writer is
      gone (killed, crashed; or an entry of another host older than ``min_age_s``) and that
      no row refers to are deleted **whatever their age**, with their temp files; the entry
      is then removed. Entries of running writers are left alone (their transaction may
      still commit).
    * unless ``journal_only`` (the cheap check run at startup): files in :data:`MEDIA_KINDS`
      folders with image suffixes and older than ``min_age_s`` that no row refers to (files
      written before the journal existed, rows deleted by hand).

    Returns the relative paths deleted (or that would be, with ``dry_run``, which leaves the
    journal as it is); audited as ``media.sweep`` (``journal_only`` with an empty journal
    touches nothing and writes no audit row).
    """
    import time

    require_role(user, Role.ADMIN)
    # Whether a writer is gone is asked *before* the rows are read: a row its writer committed
    # just before dying is then seen, and its file kept.
    stale = [e for e in store.pending_entries()
             if e.alive is False or (e.alive is None and e.age_s >= min_age_s)]
    if journal_only and not stale:
        return []
    journaled = {p for e in stale for p in e.paths if _is_media_path(p)}
    referenced = _referenced_paths(s, journaled if journal_only else None)
    orphans = {p for p in journaled if p not in referenced and (store.root / p).is_file()}
    if not journal_only:
        now = time.time()
        for kind in MEDIA_KINDS:
            base = store.root / kind
            if not base.is_dir():
                continue
            for f in base.rglob("*"):
                if not f.is_file() or f.suffix.lower() not in _IMAGE_SUFFIXES:
                    continue
                rel = f.relative_to(store.root).as_posix()
                if rel in referenced or now - f.stat().st_mtime < min_age_s:
                    continue
                orphans.add(rel)
    if not dry_run:
        for e in stale:  # the entry's unreferenced files, its temp files, then the entry itself
            store.discard_pending(e, delete=[p for p in e.paths if p in orphans])
        for rel in orphans:
            store.delete(rel)
    details: dict[str, Any] = {"files": len(orphans), "dry_run": dry_run}
    if stale:
        details["journal_entries"] = len(stale)
    repo.audit(s, user.username, "media.sweep", "retention", None, **details)
    return sorted(orphans)


# --- export -----------------------------------------------------------------------------------

def export_attendance(s: Session, user: AuthUser, course_code: str) -> list[dict[str, Any]]:
    """Attendance rows of a course (audited ``export``), read through ``reports.records_for_user``
    (the same access-checked read as the dashboard's downloads).

    Admin: every row; instructor: only their own courses (another course is refused, not
    silently empty); student: only their own rows. Rows are dicts with the keys in
    :data:`EXPORT_COLUMNS`, oldest session first.
    """
    from aas_core.services.reports import records_for_user

    course = repo.get_course(s, course_code)
    if user.role == Role.STUDENT and not user.is_admin:
        if not user.student_number:
            raise AccessDenied(f"{user.username} is not linked to a student")
    else:
        require_course(user, course)
    rows = _export_rows(records_for_user(s, user, course_ids=[course.id]))
    repo.audit(s, user.username, "export", "course", course.code, rows=len(rows))
    return rows


def _export_rows(df: Any) -> list[dict[str, Any]]:
    """``reports`` records -> :data:`EXPORT_COLUMNS` dicts, oldest session first."""
    df = df.sort_values(["started_at", "session_id", "student_number"], kind="stable")
    return [{"course": r.course_code, "session_id": int(r.session_id),
             "started_at": r.started_at.isoformat(sep=" ", timespec="seconds"), "student_number": r.student_number,
             "name": r.student_name, "auto_status": r.auto_status, "final_status": r.final_status,
             "overridden_by": r.overridden_by, "override_reason": r.override_reason} for r in df.itertuples()]


def export_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text of :func:`export_attendance` rows (header always present, cells formula-safe)."""
    from aas_core.services.reports import formula_safe

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(EXPORT_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: formula_safe(v) for k, v in r.items()})
    return buf.getvalue()


# --- scoped reads -----------------------------------------------------------------------------

def student_records(s: Session, user: AuthUser, student_number: str) -> list[dict[str, Any]]:
    """A student's attendance rows: students only their own, instructors only their courses' rows."""
    from aas_core.services.reports import records_for_user

    require_student_access(user, repo.get_student(s, student_number))
    return _export_rows(records_for_user(s, user, student_number=student_number))


def student_samples(s: Session, user: AuthUser, student_number: str) -> list[FaceSample]:
    """The student's face samples (rows), for the owner, their instructors and admins."""
    student = repo.get_student(s, student_number)
    require_student_access(user, student)
    return list(s.scalars(select(FaceSample).where(FaceSample.student_id == student.id).order_by(FaceSample.id)))


def sample_image(s: Session, store: ImageStore, user: AuthUser, sample_id: int) -> np.ndarray:
    """The stored photo of one face sample (same access rule as :func:`student_samples`)."""
    sample = s.get(FaceSample, sample_id)
    if sample is None:
        raise repo.NotFound(f"no face sample {sample_id}")
    require_student_access(user, sample.student)
    if not sample.image_path:
        raise FileNotFoundError(f"face sample {sample_id} has no stored image")
    return store.load(sample.image_path)


def course_sessions(s: Session, user: AuthUser, course_code: str) -> list[dict[str, Any]]:
    """Sessions of a course, newest first, with record counts (admin, or the course's instructor)."""
    course = repo.get_course(s, course_code)
    require_course(user, course)
    out = []
    for sess in repo.sessions_of(s, course):
        counts: dict[str, int] = {}
        for r in sess.records:
            counts[r.final_status] = counts.get(r.final_status, 0) + 1
        out.append({"session_id": sess.id, "course": course.code,
                    "started_at": sess.started_at, "ended_at": sess.ended_at, "status": sess.status.value,
                    "snapshots": len(sess.snapshots), "unknown_faces": sess.unknown_faces, "statuses": counts})
    return out


def require_session(s: Session, user: AuthUser, session_id: int) -> ClassSession:
    """The session, if ``user`` may see its course (admin or its instructor); else AccessDenied."""
    sess = s.get(ClassSession, session_id)
    if sess is None:
        raise repo.NotFound(f"no session {session_id}")
    require_course(user, sess.course)
    return sess


def stored_snapshots(s: Session, user: AuthUser, limit: int = 60) -> list[tuple[int, int, int, Any, int]]:
    """(snapshot id, index, session id, started at, course id) of the latest stored snapshots of
    the courses ``user`` manages, newest first (students: none)."""
    from aas_core.services.auth import visible_courses

    course_ids = [c.id for c in visible_courses(s, user)]
    if not course_ids:
        return []
    q = (select(Snapshot.id, Snapshot.index, ClassSession.id, ClassSession.started_at, ClassSession.course_id)
         .join(ClassSession, Snapshot.session_id == ClassSession.id)
         .where(Snapshot.image_path.is_not(None), ClassSession.course_id.in_(course_ids))
         .order_by(ClassSession.started_at.desc(), Snapshot.index).limit(limit))
    return [tuple(r) for r in s.execute(q).all()]


def course_gallery_version(s: Session, user: AuthUser, course_code: str,
                           model_name: str) -> tuple[int, int, int, int]:
    """Cheap fingerprint of a course gallery: (roster size, samples, newest sample id, classroom
    templates; -1 when the course does not use them)."""
    from sqlalchemy import func

    from aas_core.db.models import Enrollment

    course = repo.get_course(s, course_code)
    require_course(user, course)
    roster = s.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.course_id == course.id)) or 0
    n, newest = s.execute(
        select(func.count(FaceSample.id), func.max(FaceSample.id))
        .join(Enrollment, Enrollment.student_id == FaceSample.student_id)
        .where(Enrollment.course_id == course.id, FaceSample.model_name == model_name,
               FaceSample.accepted.is_(True))).one()
    from aas_core.db.models import FaceTemplate

    templates = s.scalar(
        select(func.count(FaceTemplate.id)).join(FaceSample, FaceSample.id == FaceTemplate.sample_id)
        .join(Enrollment, Enrollment.student_id == FaceSample.student_id)
        .where(Enrollment.course_id == course.id, FaceSample.model_name == model_name)) or 0
    return int(roster), int(n or 0), int(newest or 0), int(templates) + (
        0 if course.config.recognition.classroom_templates else -1)


def course_gallery(s: Session, user: AuthUser, course_code: str, model_name: str) -> tuple[list[str], np.ndarray]:
    """The roster's face embeddings for one model (admin, or the course's instructor)."""
    course = repo.get_course(s, course_code)
    require_course(user, course)
    return repo.gallery_arrays(s, course, model_name)


def course_classroom_templates(s: Session, user: AuthUser, course_code: str,
                               model_name: str) -> tuple[list[str], np.ndarray] | None:
    """The roster's classroom templates for one model (``vision.templates``), or None when the
    course does not use them (admin, or the course's instructor)."""
    course = repo.get_course(s, course_code)
    require_course(user, course)
    if not course.config.recognition.classroom_templates:
        return None
    return repo.classroom_arrays(s, course, model_name)


def course_matching_gallery(s: Session, user: AuthUser, course_code: str, model_name: str):  # type: ignore[no-untyped-def]
    """The gallery the roster is matched against (portraits + classroom templates), or None."""
    from aas_core.vision.templates import roster_gallery

    ids, embs = course_gallery(s, user, course_code, model_name)
    return roster_gallery(ids, embs, model_name, course_classroom_templates(s, user, course_code, model_name))


def snapshot_image(s: Session, store: ImageStore, user: AuthUser, snapshot_id: int, *,
                   max_side: int | None = None) -> np.ndarray:
    """A classroom snapshot (admin, or the instructor of its course); ``max_side``: at most that
    many pixels, for the screen (``ImageStore.load``)."""
    snap = s.get(Snapshot, snapshot_id)
    if snap is None:
        raise repo.NotFound(f"no snapshot {snapshot_id}")
    require_session(s, user, snap.session_id)
    if not snap.image_path:
        raise FileNotFoundError(f"snapshot {snapshot_id} has no stored image (purged or never captured)")
    return store.load(snap.image_path, max_side=max_side)


def observation_crop(s: Session, store: ImageStore, user: AuthUser, observation_id: int,
                     enhanced: bool = False) -> np.ndarray:
    """The crop of one detected face (admin, or the instructor of the session's course)."""
    obs = s.get(FaceObservation, observation_id)
    if obs is None:
        raise repo.NotFound(f"no face observation {observation_id}")
    require_session(s, user, obs.snapshot.session_id)
    rel = obs.enhanced_path if enhanced else obs.crop_path
    if not rel:
        raise FileNotFoundError(f"face observation {observation_id} has no stored crop (purged or withdrawn)")
    return store.load(rel)


def checkin_crop(s: Session, store: ImageStore, user: AuthUser, checkin_id: int) -> np.ndarray:
    """The face of a self check-in's selfie: admin, the instructor of the session's course, or the
    student who checked in (nobody else's)."""
    c = s.get(CheckIn, checkin_id)
    if c is None:
        raise repo.NotFound(f"no check-in {checkin_id}")
    if not (user.role == Role.STUDENT and not user.is_admin and user.student_number is not None
            and c.student.student_number == user.student_number):
        require_session(s, user, c.session_id)
    if not c.crop_path:
        raise FileNotFoundError(f"check-in {checkin_id} has no stored photo (purged or withdrawn)")
    return store.load(c.crop_path)
