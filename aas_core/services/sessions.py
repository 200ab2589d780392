"""Class sessions, orchestrated: start → store each snapshot → process it → finalize (or abort).

The same path serves every caller: ``aas session run`` (given images), ``aas session
capture`` and the Live Session page (a camera through ``services.camera_session``), and a
resumed session after a restart. Every step commits on its own, so a crash loses at most
the step in flight; attendance records are written in one transaction (never half-written).

What each step delegates: rows from pipeline output to ``services.observations``; the
decision to the pure ``domain.decision.decide_session``; review and corrections live in
``services.review``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
    utcnow,
)
from aas_core.domain.course_config import SessionPlan, draw_seed
from aas_core.domain.decision import decide_session
from aas_core.media.store import ImageStore, discard_on_rollback
from aas_core.services import observations
from aas_core.services.enrollment import ensure_embeddings
from aas_core.vision.matching import Gallery
from aas_core.vision.pipeline import Pipeline, PipelineResult

OnProcessed = Callable[[int, np.ndarray, "PipelineResult | Exception"], None]


class NoSnapshots(RuntimeError):
    """Finalising a session that has no processed snapshot."""

    def __init__(self, message: str, session_id: int) -> None:
        super().__init__(message)
        self.session_id = session_id


@dataclass
class SessionOutcome:
    session_id: int
    statuses: dict[str, str]
    unknown_faces: int
    snapshots: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "statuses": self.statuses, "unknown_faces": self.unknown_faces,
                "snapshots": self.snapshots}


@dataclass(frozen=True)
class Recognition:
    """What a session's snapshots are matched against: the roster gallery and the course threshold."""

    gallery: Gallery | None
    threshold: float | None  # None: the pipeline's (settings or the embedder's calibrated default)


class SessionService:
    """Operations on one database + image store with one pipeline."""

    def __init__(self, url: str, store: ImageStore, pipeline: Pipeline, settings: Settings, *,
                 seat_continuity: bool = True) -> None:
        self.url = url
        self.seat_continuity = seat_continuity
        self.store = store
        self.pipeline = pipeline
        self.settings = settings

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, course_code: str, *, plan: SessionPlan | None = None, seed: int | None = None,
              camera_name: str | None = None, actor: str = "system") -> int:
        """Open a session (committed at once), then embed roster photos the model lacks.

        Without a ``plan`` the session expects the course's snapshot count of given images.
        """
        seed = draw_seed() if seed is None else seed
        with session_scope(self.url) as s:
            course = repo.get_course(s, course_code)
            plan = plan or SessionPlan.for_images(course.config.plan.snapshots)
            sess = ClassSession(course_id=course.id, status=SessionStatus.RUNNING, capture_plan=plan, seed=seed,
                                camera_name=camera_name, profile=self.pipeline.config.profile)
            s.add(sess)
            s.flush()
            repo.audit(s, actor, "session.start", "session", sess.id, course=course_code)
            session_id = sess.id
        # Profile switches: embed stored samples with this pipeline's model before matching,
        # outside the transaction above (models run for seconds; see ensure_embeddings).
        ensure_embeddings(self.url, course_code, self.pipeline, self.store, self.settings)
        return session_id

    def started_at(self, session_id: int) -> datetime:
        with session_scope(self.url) as s:
            return self._session(s, session_id).started_at

    def store_snapshot(self, session_id: int, index: int, image: np.ndarray, *, camera: str | None = None,
                       light_used: bool = False, captured_at: datetime | None = None,
                       scheduled_offset_s: float | None = None) -> int:
        """Write the image (evidence) and its row and commit, before any processing."""
        rel = self.store.save("snapshots", image, quality=95)
        with session_scope(self.url) as s:
            discard_on_rollback(s, self.store, rel)  # the row or nothing: no orphan image on failure
            old = s.scalar(select(Snapshot).where(Snapshot.session_id == session_id, Snapshot.index == index))
            if old is not None:  # a retake replaces a missing/failed one
                self.store.delete(old.image_path)
                for o in old.observations:  # and its face crops, which would otherwise be orphaned
                    self.store.delete(o.crop_path)
                    self.store.delete(o.enhanced_path)
                s.delete(old)
                s.flush()
            snap = Snapshot(session_id=session_id, index=index, captured_at=captured_at or utcnow(), camera=camera,
                            light_used=light_used, image_path=rel, status=SnapshotStatus.CAPTURED,
                            scheduled_offset_s=scheduled_offset_s)
            s.add(snap)
            s.flush()
            return snap.id

    def record_missing(self, session_id: int, index: int, error: str, camera: str | None = None) -> None:
        with session_scope(self.url) as s:
            if s.scalar(select(Snapshot).where(Snapshot.session_id == session_id, Snapshot.index == index)):
                return
            s.add(Snapshot(session_id=session_id, index=index, status=SnapshotStatus.MISSING, error=error[:2000],
                           camera=camera))

    def recognition(self, session_id: int) -> Recognition:
        with session_scope(self.url) as s:
            course = self._session(s, session_id).course
            ids, embs = repo.gallery_arrays(s, course, self.pipeline.embedder.name)
            threshold = course.config.recognition.threshold
        return Recognition(Gallery(ids, embs, self.pipeline.embedder.name) if ids else None, threshold)

    def process_snapshot(self, snapshot_id: int, recognition: Recognition | None = None, *,
                         image: np.ndarray | None = None) -> PipelineResult:
        """Run the pipeline on a snapshot and store its face observations.

        ``recognition``: gallery and threshold to match against (read now when not given).
        ``image``: the frame as captured (processed as is; the stored JPEG is the evidence).
        Without it the stored file is read (a resumed session).
        """
        with session_scope(self.url) as s:
            snap = s.get(Snapshot, snapshot_id)
            if snap is None or not snap.image_path:
                raise LookupError(f"snapshot {snapshot_id} has no stored image")
            rel, session_id = snap.image_path, snap.session_id
        if image is None:
            image = self.store.load(rel)
        recognition = recognition or self.recognition(session_id)
        try:
            result = self.pipeline.run(image, recognition.gallery, recognition.threshold)
        except Exception as exc:
            with session_scope(self.url) as s:
                snap = s.get(Snapshot, snapshot_id)
                snap.status = SnapshotStatus.FAILED
                snap.error = f"{exc.__class__.__name__}: {exc}"[:2000]
            raise
        crop_paths = [self.store.save("crops", observations.viewable_crop(c)) for c in result.crops.crops]
        enh_paths = [self.store.save("crops", e) if e is not None else None for e in result.crops.enhanced]
        with session_scope(self.url) as s:
            for p in [*crop_paths, *enh_paths]:
                if p:
                    discard_on_rollback(s, self.store, p)
            named = {a for a in result.match.assigned if a} if result.match else set()
            snap = s.get(Snapshot, snapshot_id)
            # Re-processing replaces the observations: their crop files go once this commits.
            replaced = [p for o in snap.observations for p in (o.crop_path, o.enhanced_path) if p]
            snap.observations.clear()
            snap.observations.extend(observations.observation_rows(
                result, observations.student_ids(s, named), crop_paths, enh_paths))
            snap.status = SnapshotStatus.PROCESSED
            snap.error = None
            snap.info = observations.snapshot_info(result, self.pipeline.config.profile)
        for p in replaced:
            self.store.delete(p)
        return result

    def finalize(self, session_id: int, *, actor: str = "system") -> SessionOutcome:
        """Decide every rostered student's status from the stored observations, in one transaction."""
        with session_scope(self.url) as s:
            sess = self._session(s, session_id)
            course = sess.course
            n = session_plan(sess).snapshots
            snaps = {x.index: x for x in sess.snapshots}
            ordered = [snaps.get(k) for k in range(n)]
            students = repo.roster(s, course)
            numbers_by_id = {st.id: st.student_number for st in students}
            ids_by_number = {v: k for k, v in numbers_by_id.items()}
            if self.seat_continuity:
                observations.apply_seat_continuity(ordered, numbers_by_id, ids_by_number,
                                                   getattr(self.pipeline.embedder, "loose_threshold", None))
                s.flush()
            usable = [k for k, x in enumerate(ordered) if x is not None and x.status == SnapshotStatus.PROCESSED]
            decided = decide_session(n, usable, observations.sightings(ordered, numbers_by_id),
                                     list(ids_by_number), course.config.rules)
            if decided is None:
                # No usable snapshot is "no data", never "everybody absent".
                raise NoSnapshots(f"session {session_id}: no snapshot was captured and processed; "
                                  "attendance cannot be decided (retake or close the session)", session_id)
            existing = {r.student_id: r for r in sess.records}
            for number, d in decided.items():
                rec = existing.get(ids_by_number[number])
                if rec is None:
                    s.add(AttendanceRecord(session_id=sess.id, student_id=ids_by_number[number],
                                           auto_status=d.status.value, final_status=d.status.value,
                                           presence=d.presence, best_similarity=d.best_similarity))
                else:  # re-finalising keeps instructor overrides
                    rec.auto_status = d.status.value
                    rec.presence = d.presence
                    rec.best_similarity = d.best_similarity
                    if not rec.overridden_by:
                        rec.final_status = d.status.value
            sess.unknown_faces = max((sum(o.student_id is None for o in ordered[k].observations) for k in usable),
                                     default=0)
            sess.status = SessionStatus.COMPLETED
            sess.ended_at = utcnow()
            repo.audit(s, actor, "session.finalize", "session", sess.id, statuses=len(decided))
            snaps_json = [{"index": k, "status": snaps[k].status.value if k in snaps else "missing",
                           "faces": len(snaps[k].observations) if k in snaps else 0,
                           "timings_ms": (snaps[k].info or {}).get("timings_ms") if k in snaps else None}
                          for k in range(n)]
            return SessionOutcome(sess.id, {k: d.status.value for k, d in decided.items()}, sess.unknown_faces,
                                  snaps_json)

    def finalize_or_abort(self, session_id: int, *, actor: str = "system") -> SessionOutcome | None:
        """``finalize``; when no snapshot could be processed the session is aborted and None returned."""
        try:
            return self.finalize(session_id, actor=actor)
        except NoSnapshots as exc:
            self.abort(session_id, actor=actor, reason=str(exc))
            return None

    def abort(self, session_id: int, *, actor: str, reason: str) -> None:
        """Close a session without attendance records (nothing usable was captured)."""
        with session_scope(self.url) as s:
            sess = s.get(ClassSession, session_id)
            if sess is None or sess.status == SessionStatus.COMPLETED:
                return
            sess.status = SessionStatus.ABORTED
            sess.ended_at = utcnow()
            repo.audit(s, actor, "session.abort", "session", session_id, reason=reason[:300])

    # --- whole sessions -------------------------------------------------------------------------
    def run_from_images(self, course_code: str, images: list[np.ndarray], *, actor: str = "system",
                        camera: str = "upload", on_processed: OnProcessed | None = None) -> SessionOutcome:
        """The whole session path from already-taken images (CLI, uploads, demos, tests).

        A snapshot whose processing fails is kept as FAILED (the rules skip it) and the
        session goes on; with no usable snapshot at all the session is aborted and
        ``NoSnapshots`` raised ("no data", never "everybody absent").
        """
        if not images:
            raise ValueError("a session needs at least one snapshot")
        sid = self.start(course_code, camera_name=camera, plan=SessionPlan.for_images(len(images), camera), actor=actor)
        recognition = self.recognition(sid)
        for k, img in enumerate(images):
            snap_id = self.store_snapshot(sid, k, img, camera=camera)
            try:
                result: PipelineResult | Exception = self.process_snapshot(snap_id, recognition, image=img)
            except Exception as exc:  # stored as FAILED by process_snapshot
                result = exc
            if on_processed:
                on_processed(k, img, result)
        outcome = self.finalize_or_abort(sid, actor=actor)
        if outcome is None:
            raise NoSnapshots(f"session {sid}: no snapshot could be processed; the session was closed without "
                              "attendance", sid)
        return outcome

    def resume_or_close(self, session_id: int, *, actor: str = "system") -> SessionOutcome:
        """After a restart: process snapshots that were stored but not processed, record the
        ones never taken as missing, then decide with the data there is."""
        with session_scope(self.url) as s:
            sess = self._session(s, session_id)
            pending = [x.id for x in sess.snapshots if x.status == SnapshotStatus.CAPTURED]
            have = {x.index for x in sess.snapshots}
            n = session_plan(sess).snapshots
        for k in range(n):
            if k not in have:
                self.record_missing(session_id, k, "not captured: the session was interrupted")
        recognition = self.recognition(session_id)
        for snap_id in pending:
            self.process_snapshot(snap_id, recognition)
        return self.finalize(session_id, actor=actor)

    # --- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _session(s: Any, session_id: int) -> ClassSession:
        sess = s.get(ClassSession, session_id)
        if sess is None:
            raise repo.NotFound(f"no session {session_id}")
        return sess


def session_plan(sess: ClassSession) -> SessionPlan:
    """The snapshot count and schedule a session was started with."""
    # Every session since migration 0004 has a plan; this covers rows written by hand.
    return sess.capture_plan or SessionPlan.for_images(max([x.index + 1 for x in sess.snapshots] + [1]))
