"""Live Session glue: run a session with per-snapshot feedback, camera runs in the background,
and the review data (statuses, evidence crops, overrides).

The session logic itself is ``SessionService`` (store -> process -> finalize) and
``capture.SessionRunner`` (when to take each snapshot); this module only wires them to the
page: callbacks for progress, a process-wide registry of running camera sessions (so a
browser reload finds its session again), and rows shaped for ``st.data_editor``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from aas_core.attendance import Status
from aas_core.auth import AuthUser, require_course
from aas_core.db import repo, session_scope
from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    Snapshot,
    SnapshotStatus,
    Student,
)
from aas_core.live import CameraSession
from aas_core.sessions import NoSnapshots, SessionOutcome, SessionService
from aas_core.storage import ImageStore
from aas_core.ui.draw import data_uri, draw_observations
from aas_core.ui.reports import presence_text

STATUS_VALUES = [s.value for s in Status]

OnProcessed = Callable[[int, np.ndarray, Any], None]  # (index, image, PipelineResult)


def pipeline_notes(pipeline: Any, thresholds: dict[str, Any] | None) -> list[str]:
    """Warnings about a course threshold calibrated for another model than the one loaded."""
    notes = []
    model = (thresholds or {}).get("model")
    if model and model != pipeline.embedder.name:
        notes.append(f"The course threshold was calibrated for {model}, but the pipeline uses "
                     f"{pipeline.embedder.name}; re-check it on Evaluation.")
    return notes


def run_images(svc: SessionService, course_code: str, images: Sequence[np.ndarray], *, actor: str,
               on_processed: OnProcessed | None = None, camera: str = "upload") -> tuple[int, SessionOutcome | None]:
    """``SessionService.run_from_images`` for the page: (session id, outcome or None if aborted)."""
    try:
        out = svc.run_from_images(course_code, list(images), actor=actor, camera=camera, on_processed=on_processed)
    except NoSnapshots as exc:
        return exc.session_id, None
    return out.session_id, out


def finalize_or_abort(svc: SessionService, session_id: int, n_snapshots: int, *, actor: str) -> SessionOutcome | None:
    """``finalize``; when no snapshot could be processed the session is aborted and None returned."""
    try:
        return svc.finalize(session_id, n_snapshots=n_snapshots, actor=actor)
    except NoSnapshots as exc:
        svc.abort(session_id, actor=actor, reason=str(exc))
        return None


# --- camera sessions running in the background ---------------------------------------------------

CameraRun = CameraSession  # what the Live Session page keeps per running camera session


def start_camera_run(svc: SessionService, course_code: str, camera: Any, plan: Any, *, actor: str,
                     settle_s: float = 1.0, use_light: bool = True) -> CameraSession:
    """Start a session and capture its plan in the background (``aas_core.live.CameraSession``)."""
    from aas_core.capture import camera_name

    seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    plan_json = {"first_after_s": plan.first_after_s, "second_after_s": plan.second_after_s,
                 "session_length_s": plan.session_length_s, "source": "camera"}
    run = CameraSession(svc, camera, plan.schedule(seed), course_code=course_code, camera_name=camera_name(camera),
                        seed=seed, plan=plan_json, settle_s=settle_s, session_end_s=plan.session_length_s,
                        actor=actor, use_light=use_light)
    run.start()
    return run


def stop_camera_run(svc: SessionService, run: CameraSession, *, actor: str) -> SessionOutcome | None:
    """Stop capturing and decide attendance from the snapshots taken so far (missing ones skipped).

    None: nothing was captured, the session is aborted (no attendance recorded)."""
    outcome = run.stop()
    try:
        run.camera.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass
    return outcome


# --- review ------------------------------------------------------------------------------------------

@dataclass
class SnapshotView:
    index: int
    status: str
    image: np.ndarray | None  # annotated
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


def _load_or_none(store: ImageStore, rel: str | None) -> np.ndarray | None:
    if not rel:
        return None
    try:
        return store.load(rel)
    except (FileNotFoundError, ValueError):
        return None


def load_review(url: str, store: ImageStore, user: AuthUser, session_id: int, *, with_images: bool = True) -> Review:
    """Everything the review screen shows for one session (access-checked: course instructor or admin)."""
    with session_scope(url) as s:
        sess = s.get(ClassSession, session_id)
        if sess is None:
            raise repo.NotFound(f"no session {session_id}")
        require_course(user, sess.course)
        snaps = list(sess.snapshots)
        plan_n = int((sess.capture_plan or {}).get("snapshots") or 0)
        n = max([x.index + 1 for x in snaps] + [plan_n, 1])
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
                ev = Evidence(snap.index, _load_or_none(store, o.crop_path) if with_images else None, o.similarity,
                              o.top_matches, o.id)
                if o.student_id is not None:
                    by_student.setdefault(o.student_id, []).append(ev)
                else:
                    unknown.append(ev)
            image = None
            if with_images and snap.image_path:
                raw = _load_or_none(store, snap.image_path)
                if raw is not None:
                    labels = [names.get(o.student_id, ("?", ""))[0] if o.student_id else "?" for o in obs]
                    image = draw_observations(raw, [(o.x1, o.y1, o.x2, o.y2) for o in obs], labels,
                                              [o.student_id is not None for o in obs])
            views.append(SnapshotView(snap.index, snap.status.value, image, len(obs),
                                      sum(o.student_id is not None for o in obs), snap.error,
                                      (snap.info or {}).get("timings_ms"), snap.captured_at))
        rows = []
        records = s.scalars(select(AttendanceRecord).where(AttendanceRecord.session_id == session_id)).all()
        for rec in records:
            sn, name = names.get(rec.student_id, ("?", "?"))
            rows.append(ReviewRow(sn, name, rec.auto_status, rec.final_status, presence_text(rec.presence),
                                  rec.best_similarity, rec.overridden_by, rec.override_reason,
                                  sorted(by_student.get(rec.student_id, []), key=lambda e: e.snapshot)))
        rows.sort(key=lambda r: (STATUS_VALUES.index(r.final_status) if r.final_status in STATUS_VALUES else 9,
                                 r.student_number))
        return Review(sess.id, sess.course.code, sess.status.value, sess.started_at, n, sess.unknown_faces, rows,
                      views, unknown)


_NOT_SEEN = data_uri(np.full((80, 64, 3), 241, np.uint8))  # a blank tile instead of the text "None"


def editor_rows(review: Review) -> list[dict[str, Any]]:
    """Rows for the review ``st.data_editor``: evidence thumbnails per snapshot as data URIs."""
    out = []
    for r in review.rows:
        row: dict[str, Any] = {"student_id": r.student_number, "name": r.name, "auto": r.auto_status,
                               "presence": r.presence}
        best: dict[int, Evidence] = {}
        for ev in r.evidence:
            if ev.snapshot not in best or (ev.similarity or 0) > (best[ev.snapshot].similarity or 0):
                best[ev.snapshot] = ev
        for k in range(review.n_snapshots):
            ev = best.get(k)
            row[f"S{k + 1}"] = data_uri(ev.crop, 80) if ev is not None and ev.crop is not None else _NOT_SEEN
        row["similarity"] = " · ".join(f"{best[k].similarity:.2f}" if k in best and best[k].similarity is not None
                                       else "–" for k in range(review.n_snapshots))
        row["final"] = r.final_status
        row["reason"] = r.reason or ""
        row["overridden_by"] = r.overridden_by or ""
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
        sess = s.get(ClassSession, session_id)
        if sess is None:
            raise repo.NotFound(f"no session {session_id}")
        require_course(user, sess.course)
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


def review_fingerprint(url: str, session_id: int) -> str:
    """Changes whenever anything the review shows changes (snapshots, records, overrides, status)."""
    with session_scope(url) as s:
        status = s.scalar(select(ClassSession.status).where(ClassSession.id == session_id))
        records = tuple(s.execute(
            select(AttendanceRecord.student_id, AttendanceRecord.final_status, AttendanceRecord.overridden_by,
                   AttendanceRecord.override_reason)
            .where(AttendanceRecord.session_id == session_id).order_by(AttendanceRecord.student_id)).tuples())
    import hashlib

    raw = repr((str(status), [tuple(r) for r in records], snapshot_states(url, session_id)))
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def snapshot_states(url: str, session_id: int) -> tuple[tuple[int, str], ...]:
    """(index, status) of every stored snapshot row: a cheap poll for "something new arrived"."""
    with session_scope(url) as s:
        rows = s.execute(select(Snapshot.index, Snapshot.status).where(Snapshot.session_id == session_id)
                         .order_by(Snapshot.index)).all()
    return tuple((int(i), st.value if isinstance(st, SnapshotStatus) else str(st)) for i, st in rows)
