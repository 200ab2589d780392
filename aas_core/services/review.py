"""Review of a session and corrections: what the instructor sees (statuses, evidence crops,
annotated snapshots), overrides with a reason, and "that face is student X".

Access-checked here (course instructor or admin), for the Live Session page and any other
caller; the rows are shaped for ``st.data_editor`` but nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from aas_core.db import repo, session_scope
from aas_core.db.models import (
    AttendanceRecord,
    CheckIn,
    ClassSession,
    FaceObservation,
    Snapshot,
    SnapshotStatus,
    Student,
)
from aas_core.domain.attendance import Status
from aas_core.domain.course_config import CourseConfig
from aas_core.media.draw import DISPLAY_MAX_SIDE, data_uri, display_jpeg, draw_observations, draw_result
from aas_core.media.store import ImageStore
from aas_core.services import corrections, privacy
from aas_core.services.auth import AuthUser, require_course
from aas_core.services.enrollment import SampleOutcome, enroll_images
from aas_core.services.reports import presence_text
from aas_core.services.sessions import SessionOutcome, SessionService, session_plan

STATUS_VALUES = [s.value for s in Status]
#: What a person reads for each status (never the stored value "left_early").
STATUS_LABELS = {"attended": "attended", "late": "late", "left_early": "left early", "absent": "absent"}
#: Exceptions first: the review is for the students whose status needs a look.
EXCEPTION_ORDER = ["absent", "late", "left_early", "attended"]


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status or "", (status or "—").replace("_", " "))


def pipeline_notes(pipeline: Any, config: CourseConfig) -> list[str]:
    """Warnings about a course threshold calibrated for another model than the one loaded."""
    model = config.recognition.model
    if model and config.recognition.threshold is not None and model != pipeline.embedder.name:
        return [f"The course threshold was calibrated for {model}, but the pipeline uses "
                f"{pipeline.embedder.name}; re-check it on Evaluation."]
    return []


def recent_sessions(url: str, user: AuthUser, course_code: str, limit: int = 20) -> list[tuple[int, datetime, str]]:
    """(id, started at, status) of the course's latest sessions, newest first."""
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        require_course(user, course)
        return [(x.id, x.started_at, x.status.value) for x in repo.sessions_of(s, course)[:limit]]


# --- review ------------------------------------------------------------------------------------------

@dataclass
class SnapshotView:
    index: int
    status: str
    jpeg: bytes | None  # annotated, at most DISPLAY_MAX_SIDE px, JPEG for ``st.image`` (media.draw.display_jpeg)
    faces: int
    recognised: int
    error: str | None
    timings_ms: dict[str, float] | None
    captured_at: datetime | None


@dataclass
class Evidence:
    snapshot: int  # 0-based
    crop: np.ndarray | None
    similarity: float | None
    top: list[Any] | None
    observation_id: int | None = None
    source: str = "camera"  # or "self_check_in" (services.checkin): the review says which


@dataclass
class ReviewRow:
    student_number: str
    name: str
    auto_status: str
    final_status: str
    presence: str
    best_similarity: float | None
    overridden_by: str | None
    reason: str | None
    evidence: list[Evidence]
    overridden_at: datetime | None = None
    # Why a person should look at this student (domain.abstention): a snapshot that could not
    # tell, a status resting on seat continuity alone. Empty = nothing to review.
    needs_review: list[str] = field(default_factory=list)


@dataclass
class Review:
    session_id: int
    course_code: str
    status: str
    started_at: datetime
    n_snapshots: int
    unknown_faces: int
    rows: list[ReviewRow]
    snapshots: list[SnapshotView]
    unknown: list[Evidence]


def _or_none(read: Callable[[], np.ndarray]) -> np.ndarray | None:
    """An evidence image, or None when its file was purged, erased or is unreadable."""
    try:
        return read()
    except (FileNotFoundError, ValueError):
        return None


def _snapshot_jpeg(s: Any, store: ImageStore, user: AuthUser, snap: Snapshot, obs: list[FaceObservation],
                   names: dict[int, tuple[str, str]]) -> bytes | None:
    """The annotated snapshot for the screen: read and drawn at display size (``st.image`` sends no
    more) and encoded once here, which also keeps the cached review small (bytes, not pixels)."""
    try:
        raw = privacy.snapshot_image(s, store, user, snap.id, max_side=DISPLAY_MAX_SIDE)
        width = store.size(snap.image_path or "")[0]  # the boxes are in the stored image's pixels
    except (FileNotFoundError, ValueError):  # purged, erased or unreadable
        return None
    # the name next to the id: a reviewer recognises a person, not a number
    labels = [box_label(*names.get(o.student_id, ("?", ""))) if o.student_id else "?" for o in obs]
    return display_jpeg(draw_observations(raw, [(o.x1, o.y1, o.x2, o.y2) for o in obs], labels,
                                          [o.student_id is not None for o in obs], source_width=width))


def load_review(url: str, store: ImageStore, user: AuthUser, session_id: int, *, with_images: bool = True) -> Review:
    """Everything the review screen shows for one session (access-checked: course instructor or admin)."""
    with session_scope(url) as s:
        sess = privacy.require_session(s, user, session_id)
        snaps = list(sess.snapshots)
        n = session_plan(sess).snapshots
        # Only the students this session is about: its roster records and its matched faces.
        wanted = {r.student_id for r in sess.records} | {o.student_id for x in snaps for o in x.observations
                                                          if o.student_id is not None}
        names = {st.id: (st.student_number, st.name)
                 for st in s.scalars(select(Student).where(Student.id.in_(wanted)))} if wanted else {}
        by_student: dict[int, list[Evidence]] = {}
        unknown: list[Evidence] = []
        views: list[SnapshotView] = []
        for snap in snaps:
            obs = list(snap.observations)
            for o in obs:
                # Every biometric read goes through the access-checked privacy functions.
                crop = _or_none(lambda o=o: privacy.observation_crop(s, store, user, o.id)) if with_images else None
                ev = Evidence(snap.index, crop, o.similarity, o.top_matches, o.id)
                if o.student_id is not None:
                    by_student.setdefault(o.student_id, []).append(ev)
                else:
                    unknown.append(ev)
            jpeg = _snapshot_jpeg(s, store, user, snap, obs, names) if with_images and snap.image_path else None
            views.append(SnapshotView(snap.index, snap.status.value, jpeg, len(obs),
                                      sum(o.student_id is not None for o in obs), snap.error,
                                      (snap.info or {}).get("timings_ms"), snap.captured_at))
        # Self check-ins count as sightings with their own source (services.checkin): shown as such.
        for c in s.scalars(select(CheckIn).where(CheckIn.session_id == session_id)):
            crop = _or_none(lambda c=c: privacy.checkin_crop(s, store, user, c.id)) if with_images else None
            by_student.setdefault(c.student_id, []).append(Evidence(c.snapshot_index, crop, c.similarity, None,
                                                                    source="self_check_in"))
        rows = []
        records = s.scalars(select(AttendanceRecord).where(AttendanceRecord.session_id == session_id)).all()
        for rec in records:
            sn, name = names.get(rec.student_id, ("?", "?"))
            rows.append(ReviewRow(sn, name, rec.auto_status, rec.final_status, presence_text(rec.presence),
                                  rec.best_similarity, rec.overridden_by, rec.override_reason,
                                  sorted(by_student.get(rec.student_id, []), key=lambda e: e.snapshot),
                                  needs_review=[str(x) for x in rec.review_reasons or []],
                                  overridden_at=rec.updated_at if rec.overridden_by else None))
        rows.sort(key=review_order)
        return Review(sess.id, sess.course.code, sess.status.value, sess.started_at, n, sess.unknown_faces, rows,
                      views, unknown)


def processed_jpeg(image: np.ndarray, result: Any, names: dict[str, str] | None = None) -> bytes:
    """A snapshot as the Live Session page shows it the moment it is processed (``on_processed``):
    ``result`` drawn on ``image`` at display size, JPEG for ``st.image`` (passed through as is;
    an array would be re-encoded at quality 100). ``names``: student id -> box label."""
    return display_jpeg(draw_result(image, result, names, max_side=DISPLAY_MAX_SIDE))


def box_label(student_number: str, name: str, max_name: int = 18) -> str:
    """"s1006 Ana Lima" on a face box (the name cut to ``max_name`` characters)."""
    name = (name or "").strip()
    if not name or name == student_number:
        return student_number
    return f"{student_number} {name if len(name) <= max_name else name[:max_name - 1] + '…'}"


def review_order(r: ReviewRow) -> tuple[int, int, str]:
    """Exceptions first: students the decision could not settle (until a person decided), then
    absent, late, left early, and attended last; by student id within each."""
    unsettled = bool(r.needs_review and not r.overridden_by)
    rank = EXCEPTION_ORDER.index(r.final_status) if r.final_status in EXCEPTION_ORDER else len(EXCEPTION_ORDER)
    return (0 if unsettled else 1, rank, r.student_number)


def status_counts(review: Review) -> list[tuple[str, str, int]]:
    """(key, label, count) per final status, needs review and unknown faces, exceptions first."""
    counts = {k: 0 for k in EXCEPTION_ORDER}
    for r in review.rows:
        counts[r.final_status] = counts.get(r.final_status, 0) + 1
    out = [("needs_review", "needs review", len(needs_review(review)))]
    out += [(k, status_label(k), counts.get(k, 0)) for k in EXCEPTION_ORDER]
    out.append(("unknown", "unknown faces", len(review.unknown)))
    return out


def overridden_text(r: ReviewRow) -> str:
    """"teach, 2026-03-02 14:05 UTC" ("" when nobody overrode the automatic status)."""
    if not r.overridden_by:
        return ""
    return r.overridden_by + (f", {r.overridden_at:%Y-%m-%d %H:%M} UTC" if r.overridden_at else "")


_NOT_SEEN = data_uri(np.full((80, 64, 3), 241, np.uint8))  # a blank tile instead of the text "None"


def editor_rows(review: Review) -> list[dict[str, Any]]:
    """Rows for the review ``st.data_editor``: evidence thumbnails per snapshot as data URIs."""
    out = []
    for r in review.rows:
        row: dict[str, Any] = {"student_id": r.student_number, "name": r.name, "auto": status_label(r.auto_status),
                               "presence": r.presence}
        best: dict[int, Evidence] = {}
        for ev in r.evidence:
            if ev.snapshot not in best or (ev.similarity or 0) > (best[ev.snapshot].similarity or 0):
                best[ev.snapshot] = ev
        for k in range(review.n_snapshots):
            ev = best.get(k)
            row[f"S{k + 1}"] = data_uri(ev.crop, 80) if ev is not None and ev.crop is not None else _NOT_SEEN
        row["similarity"] = " · ".join(
            ("check-in " if best[k].source == "self_check_in" else "") + f"{best[k].similarity:.2f}"
            if k in best and best[k].similarity is not None else "–" for k in range(review.n_snapshots))
        row["review"] = "; ".join(r.needs_review)
        row["final"] = r.final_status
        row["reason"] = r.reason or ""
        row["overridden_by"] = overridden_text(r)
        out.append(row)
    return out


@dataclass
class OverrideResult:
    saved: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def apply_overrides(url: str, user: AuthUser, session_id: int, changes: dict[str, tuple[str, str]]) -> OverrideResult:
    """``{student_number: (final_status, reason)}`` -> ``repo.override_status`` for each (one transaction)."""
    res = OverrideResult()
    if not changes:
        return res
    with session_scope(url) as s:
        sess = privacy.require_session(s, user, session_id)
        recs = {r.student.student_number: r for r in sess.records}
        for sn, (status, reason) in changes.items():
            rec = recs.get(sn)
            if rec is None:
                res.errors.append(f"{sn}: not in this session")
                continue
            try:
                repo.override_status(s, rec, status, user.username, reason)
                res.saved.append(sn)
            except ValueError as exc:
                res.errors.append(f"{sn}: {exc}")
        if res.errors:
            # All or nothing: a half-saved review would be confusing.
            s.rollback()
            res.saved = []
    return res


def changed_rows(original: Sequence[dict[str, Any]], edited: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Rows of the review editor whose final status or reason the user changed."""
    before = {r["student_id"]: r for r in original}
    out = {}
    for r in edited:
        b = before.get(r["student_id"])
        if b is None:
            continue
        final, reason = r.get("final") or b["final"], (r.get("reason") or "").strip()
        if final != b["final"] or reason != (b.get("reason") or "").strip():
            out[r["student_id"]] = (final, reason)
    return out


#: Audit actions after which stored biometric data may be gone or changed (crops deleted, faces
#: blacked out, matches moved): any of them bumps :func:`consent_version`.
BIOMETRIC_CHANGES = ("consent.give", "consent.withdraw", "student.erase", "media.purge", "media.sweep",
                     "face.correct", "sample.delete", "session.delete")


def consent_version(s: Any) -> int:
    """A cheap counter that grows with every consent, erasure or media change (newest such audit id).

    Part of every cache key of crops and snapshots, so a cache never outlives a withdrawal.
    """
    from sqlalchemy import func

    from aas_core.db.models import AuditLog

    return int(s.scalar(select(func.max(AuditLog.id)).where(AuditLog.action.in_(BIOMETRIC_CHANGES))) or 0)


def needs_review(review: Review) -> list[ReviewRow]:
    """The rows a person still has to decide: reasons to review and no override yet."""
    return [r for r in review.rows if r.needs_review and not r.overridden_by]


def review_fingerprint(url: str, session_id: int) -> str:
    """Changes whenever anything the review shows changes (snapshots, records, overrides, status, and
    which faces still have a crop or a match: a withdrawal, erasure or purge deletes crops, so a
    cached review keyed on this is never shown after one)."""
    with session_scope(url) as s:
        status = s.scalar(select(ClassSession.status).where(ClassSession.id == session_id))
        records = tuple(s.execute(
            select(AttendanceRecord.student_id, AttendanceRecord.final_status, AttendanceRecord.overridden_by,
                   AttendanceRecord.override_reason, AttendanceRecord.review_reasons)
            .where(AttendanceRecord.session_id == session_id).order_by(AttendanceRecord.student_id)).tuples())
        faces = tuple(s.execute(
            select(FaceObservation.id, FaceObservation.student_id, FaceObservation.crop_path.is_not(None),
                   Snapshot.image_path.is_not(None))
            .join(Snapshot, FaceObservation.snapshot_id == Snapshot.id)
            .where(Snapshot.session_id == session_id).order_by(FaceObservation.id)).tuples())
        version = consent_version(s)
        checkins = tuple(s.execute(select(CheckIn.id, CheckIn.crop_path.is_not(None))
                                   .where(CheckIn.session_id == session_id).order_by(CheckIn.id)).tuples())
    import hashlib

    raw = repr((str(status), [tuple(r) for r in records], [tuple(f) for f in faces], version, checkins,
                snapshot_states(url, session_id)))
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def snapshot_states(url: str, session_id: int) -> tuple[tuple[int, str], ...]:
    """(index, status) of every stored snapshot row: a cheap poll for "something new arrived"."""
    with session_scope(url) as s:
        rows = s.execute(select(Snapshot.index, Snapshot.status).where(Snapshot.session_id == session_id)
                         .order_by(Snapshot.index)).all()
    return tuple((int(i), st.value if isinstance(st, SnapshotStatus) else str(st)) for i, st in rows)


# --- deleting a test or aborted session ----------------------------------------------------------

def delete_session(url: str, store: ImageStore, user: AuthUser, session_id: int, *,
                   running: Sequence[int] = ()) -> dict[str, int]:
    """Delete a session with its snapshots, face crops and attendance records (a test run, an
    aborted one): the course's instructor or an admin; audited as ``session.delete`` with counts.

    A session still capturing in this server (``running``: ids of live camera runs) or marked
    running in the database is refused: stop it first. Files go before the commit (see
    ``services.privacy``: a failed commit then leaves rows pointing at missing files, never files
    no row refers to).
    """
    from aas_core.db.models import SessionStatus

    with session_scope(url) as s:
        sess = privacy.require_session(s, user, session_id)
        if session_id in set(running) or sess.status == SessionStatus.RUNNING:
            raise ValueError(f"session {session_id} is still running: stop it first")
        paths = {p for snap in sess.snapshots for p in
                 [snap.image_path, *(x for o in snap.observations for x in (o.crop_path, o.enhanced_path))] if p}
        counts = {"snapshots": len(sess.snapshots), "faces": sum(len(x.observations) for x in sess.snapshots),
                  "records": len(sess.records), "overrides": sum(bool(r.overridden_by) for r in sess.records)}
        counts["files"] = sum(store.delete(p) for p in sorted(paths))
        repo.audit(s, user.username, "session.delete", "session", session_id, course=sess.course.code,
                   status=sess.status.value, started_at=sess.started_at.isoformat(sep=" ", timespec="seconds"),
                   **counts)
        s.delete(sess)
        return counts


# --- the review editor, keyed by student ---------------------------------------------------------

def editor_key(session_id: int, rows: Sequence[dict[str, Any]], generation: int = 0) -> str:
    """Widget key of the review editor: changes with the row order and after every save.

    ``st.data_editor`` keeps a keyed editor's edits *by row position* across reruns. When the
    rows re-sort (a saved override moves a student), edits kept by position would land on
    another student; a new key per order starts a fresh editor, and the edits not yet saved
    are carried by student id (:func:`with_pending`), never by position.
    """
    import hashlib

    order = "|".join(str(r["student_id"]) for r in rows)
    return f"review_editor_{session_id}_{generation}_" + hashlib.blake2b(order.encode(), digest_size=6).hexdigest()


def with_pending(rows: Sequence[dict[str, Any]], pending: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """The editor rows with the changes not yet saved applied, matched by student id."""
    out = []
    for r in rows:
        p = pending.get(r["student_id"])
        out.append({**r, "final": p[0], "reason": p[1]} if p else dict(r))
    return out


# --- corrections --------------------------------------------------------------------------------

def correct_face(svc: SessionService, user: AuthUser, observation_id: int, student_number: str, *,
                 add_to_gallery: bool = False) -> tuple[SessionOutcome, SampleOutcome | None]:
    """"That face is student X" (the seed's *Retry Wrong Face*), then re-decide the session.

    The face is assigned to X by hand (one-to-one: another face of the same snapshot that
    was X becomes unknown); overrides already made are kept. With ``add_to_gallery`` the face
    crop also goes through the enrollment quality gate into X's gallery, only if X consented.
    """
    with session_scope(svc.url) as s:
        o = s.get(FaceObservation, observation_id)
        if o is None:
            raise repo.NotFound(f"no face observation {observation_id}")
        snap = o.snapshot
        course = snap.session.course
        require_course(user, course)
        st = repo.get_student(s, student_number)
        if st.id not in {x.id for x in repo.roster(s, course)}:
            raise ValueError(f"{student_number} is not on the roster of {course.code}")
        for other in snap.observations:
            if other.id != o.id and other.student_id == st.id:
                if other.embedding is not None and other.match_source != "manual":
                    # One student per snapshot: "this face is X" says the face named X is not X.
                    corrections.record(s, other, st, user.username)
                other.student_id, other.similarity, other.match_source = None, None, None
        previous = o.student_id
        if previous is not None and previous != st.id and o.embedding is not None:
            # The matcher (or seat continuity) said X; a person says Y: a negative for X.
            corrections.record(s, o, s.get(Student, previous), user.username, assigned=st)
        o.student_id = st.id
        o.match_source = "manual"
        o.similarity = next((float(v) for t, v in (o.top_matches or []) if t == student_number), None)
        repo.audit(s, user.username, "face.correct", "observation", observation_id, student=student_number,
                   previous=previous, session=snap.session_id)
        crop_rel, session_id, consent = o.crop_path, snap.session_id, st.has_consent
    sample: SampleOutcome | None = None
    if add_to_gallery:
        if not consent:
            sample = SampleOutcome("snapshot face", False, [f"{student_number} has not consented to enrollment"])
        elif not crop_rel:
            sample = SampleOutcome("snapshot face", False, ["the face crop is no longer stored"])
        else:
            with session_scope(svc.url) as s:
                (sample,) = enroll_images(s, repo.get_student(s, student_number),
                                          [("snapshot face", svc.store.load(crop_rel))], svc.pipeline,
                                          svc.store, svc.settings, source="correction", actor=user.username)
    return svc.finalize(session_id, actor=user.username), sample
