"""Class sessions: store each snapshot the moment it exists, process it, decide attendance.

The same path serves three callers: ``aas session run`` (three stored images), the Live
Session page (uploaded images or a camera through ``capture.runner``) and a resumed session
after a restart. Every step commits on its own, so a crash loses at most the step in flight;
attendance records are written in one transaction (never half-written).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cv2
import numpy as np
from sqlalchemy import select

from aas_core import attendance
from aas_core.config import Settings
from aas_core.continuity import Seen, recover_by_seat
from aas_core.db import repo, session_scope
from aas_core.db.embeddings import to_blob
from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    FaceObservation,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
    Student,
    utcnow,
)
from aas_core.enrollment import SampleOutcome, enroll_images, ensure_embeddings
from aas_core.storage import ImageStore, discard_on_rollback
from aas_core.vision.matching import Gallery
from aas_core.vision.pipeline import Pipeline, PipelineResult

# Crops of faces smaller than this are stored upscaled so reviewers can see them.
MIN_STORED_CROP = 96


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
    def start(self, course_code: str, *, camera_name: str | None = None, plan: dict[str, Any] | None = None,
              seed: int | None = None, actor: str = "system") -> int:
        seed = random.SystemRandom().randrange(2**31) if seed is None else seed
        with session_scope(self.url) as s:
            course = repo.get_course(s, course_code)
            sess = ClassSession(course_id=course.id, status=SessionStatus.RUNNING, capture_plan=plan or course.capture_plan,
                                seed=seed, camera_name=camera_name, profile=self.pipeline.config.profile)
            s.add(sess)
            s.flush()
            repo.audit(s, actor, "session.start", "session", sess.id, course=course_code)
            # Profile switches: embed stored samples with this pipeline's model before matching.
            ensure_embeddings(s, repo.roster(s, course), self.pipeline, self.store, self.settings)
            return sess.id

    def started_at(self, session_id: int) -> datetime:
        with session_scope(self.url) as s:
            sess = s.get(ClassSession, session_id)
            if sess is None:
                raise LookupError(f"no session {session_id}")
            return sess.started_at

    def store_snapshot(self, session_id: int, index: int, image: np.ndarray, *, camera: str | None = None,
                       light_used: bool = False, captured_at: datetime | None = None,
                       scheduled_offset_s: float | None = None) -> int:
        """Write the image and its row and commit, before any processing."""
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

    def gallery(self, session_id: int) -> Gallery | None:
        with session_scope(self.url) as s:
            sess = s.get(ClassSession, session_id)
            ids, embs = repo.gallery_arrays(s, sess.course, self.pipeline.embedder.name)
        if not ids:
            return None
        return Gallery(ids, embs, self.pipeline.embedder.name)

    def process_snapshot(self, snapshot_id: int, gallery: Gallery | None = None) -> PipelineResult:
        """Run the pipeline on a stored snapshot and store its face observations."""
        with session_scope(self.url) as s:
            snap = s.get(Snapshot, snapshot_id)
            if snap is None or not snap.image_path:
                raise LookupError(f"snapshot {snapshot_id} has no stored image")
            rel, session_id = snap.image_path, snap.session_id
        image = self.store.load(rel)
        gallery = gallery if gallery is not None else self.gallery(session_id)
        try:
            result = self.pipeline.run(image, gallery)
        except Exception as exc:
            with session_scope(self.url) as s:
                snap = s.get(Snapshot, snapshot_id)
                snap.status = SnapshotStatus.FAILED
                snap.error = f"{exc.__class__.__name__}: {exc}"[:2000]
            raise
        crop_paths = [self.store.save("crops", _viewable(c)) for c in result.crops.crops]
        enh_paths = [self.store.save("crops", e) if e is not None else None for e in result.crops.enhanced]
        with session_scope(self.url) as s:
            for p in [*crop_paths, *enh_paths]:
                if p:
                    discard_on_rollback(s, self.store, p)
            named = {a for a in result.match.assigned if a} if result.match else set()
            ids = dict(s.execute(select(Student.student_number, Student.id)
                                 .where(Student.student_number.in_(named))).all()) if named else {}
            snap = s.get(Snapshot, snapshot_id)
            # Re-processing replaces the observations: their crop files go once this commits.
            replaced = [p for o in snap.observations for p in (o.crop_path, o.enhanced_path) if p]
            snap.observations.clear()
            for i in range(len(result.faces)):
                x1, y1, x2, y2 = (float(v) for v in result.faces.xyxy[i])
                sid = result.match.assigned[i] if result.match else None
                top = ([[t, round(float(v), 4)] for t, v in zip(result.match.top_ids[i], result.match.top_similarity[i])
                        if t is not None] if result.match else None)
                snap.observations.append(FaceObservation(
                    x1=x1, y1=y1, x2=x2, y2=y2, det_score=float(result.faces.confidence[i]),
                    source=str(result.faces.source[i]), crop_path=crop_paths[i], enhanced_path=enh_paths[i],
                    model_name=result.model_name, embedding=to_blob(result.embeddings[i]),
                    student_id=ids.get(sid) if sid else None,
                    similarity=float(result.match.assigned_similarity[i]) if result.match and sid else None,
                    match_source="threshold" if sid else None,
                    top_matches=top))
            snap.status = SnapshotStatus.PROCESSED
            snap.error = None
            snap.info = {"timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()},
                         "faces": len(result.faces), "model": result.model_name, "threshold": result.threshold,
                         "profile": self.pipeline.config.profile}
        for p in replaced:
            self.store.delete(p)
        return result

    def finalize(self, session_id: int, *, n_snapshots: int | None = None, actor: str = "system") -> SessionOutcome:
        """Decide every rostered student's status from the stored observations, in one transaction."""
        with session_scope(self.url) as s:
            sess = s.get(ClassSession, session_id)
            course = sess.course
            rules = attendance.RuleConfig.from_dict(course.rules or {})
            n = (n_snapshots or int((sess.capture_plan or {}).get("snapshots") or 0)
                 or max([x.index for x in sess.snapshots] + [len(sess.snapshots) - 1]) + 1)
            snaps = {x.index: x for x in sess.snapshots}
            students = repo.roster(s, course)
            if self.seat_continuity:
                self._apply_seat_continuity(s, [snaps.get(k) for k in range(n)], students)
            presence: dict[str, list[bool | None]] = {st.student_number: [] for st in students}
            best: dict[str, float] = {}
            unknown_per_snap = []
            for k in range(n):
                snap = snaps.get(k)
                ok = snap is not None and snap.status == SnapshotStatus.PROCESSED
                seen = {}
                if ok:
                    for o in snap.observations:
                        if o.student_id is not None:
                            seen[o.student_id] = max(seen.get(o.student_id, 0.0), o.similarity or 0.0)
                    unknown_per_snap.append(sum(o.student_id is None for o in snap.observations))
                for st in students:
                    presence[st.student_number].append((st.id in seen) if ok else None)
                    if st.id in seen:
                        best[st.student_number] = max(best.get(st.student_number, 0.0), seen[st.id])
            if not any(k in snaps and snaps[k].status == SnapshotStatus.PROCESSED for k in range(n)):
                # No usable snapshot is "no data", never "everybody absent".
                raise NoSnapshots(f"session {session_id}: no snapshot was captured and processed; "
                                  "attendance cannot be decided (retake or close the session)", session_id)
            decided = attendance.decide_all(presence, rules)
            existing = {r.student_id: r for r in sess.records}
            statuses = {}
            for st in students:
                status = decided[st.student_number]
                # None only when this student's every usable observation was below the course's
                # min_confidence: there is no evidence either way, and "absent" is the safe default
                # for review (the presence column shows the uncertainty).
                value = status.value if status is not None else attendance.Status.ABSENT.value
                statuses[st.student_number] = value
                rec = existing.get(st.id)
                if rec is None:
                    s.add(AttendanceRecord(session_id=sess.id, student_id=st.id, auto_status=value, final_status=value,
                                           presence=presence[st.student_number], best_similarity=best.get(st.student_number)))
                else:  # re-finalising keeps instructor overrides
                    rec.auto_status = value
                    rec.presence = presence[st.student_number]
                    rec.best_similarity = best.get(st.student_number)
                    if not rec.overridden_by:
                        rec.final_status = value
            sess.unknown_faces = max(unknown_per_snap, default=0)
            sess.status = SessionStatus.COMPLETED
            sess.ended_at = utcnow()
            repo.audit(s, actor, "session.finalize", "session", sess.id, statuses=len(statuses))
            snaps_json = [{"index": k, "status": snaps[k].status.value if k in snaps else "missing",
                           "faces": len(snaps[k].observations) if k in snaps else 0,
                           "timings_ms": (snaps[k].info or {}).get("timings_ms") if k in snaps else None}
                          for k in range(n)]
            return SessionOutcome(sess.id, statuses, sess.unknown_faces, snaps_json)

    def _apply_seat_continuity(self, s: Any, snaps: list[Snapshot | None], students: Any) -> None:
        """Name unknown faces by seat continuity (see ``aas_core.continuity``); idempotent."""
        loose = getattr(self.pipeline.embedder, "loose_threshold", None)
        if loose is None:
            return
        by_number = {st.student_number: st for st in students}
        by_id = {st.id: st.student_number for st in students}
        usable = [x for x in snaps if x is not None and x.status == SnapshotStatus.PROCESSED]
        obs = [list(x.observations) for x in usable]
        seen = [[Seen((o.x1, o.y1, o.x2, o.y2), by_id.get(o.student_id) if o.match_source != "seat" else None,
                      o.top_matches[0][0] if o.top_matches else None,
                      float(o.top_matches[0][1]) if o.top_matches else 0.0) for o in snap_obs] for snap_obs in obs]
        for snap_obs, found in zip(obs, recover_by_seat(seen, loose)):
            for o in snap_obs:  # re-finalising recomputes seat decisions from scratch
                if o.match_source == "seat":
                    o.student_id, o.similarity, o.match_source = None, None, None
            for number, i in found.items():
                if number in by_number:
                    o = snap_obs[i]
                    o.student_id = by_number[number].id
                    o.similarity = float(o.top_matches[0][1])
                    o.match_source = "seat"
        s.flush()

    def run_from_images(self, course_code: str, images: list[np.ndarray], *, actor: str = "system",
                        camera: str = "upload",
                        on_processed: Callable[[int, np.ndarray, PipelineResult | Exception], None] | None = None,
                        ) -> SessionOutcome:
        """The whole session path from already-taken images (CLI, demos, tests).

        A snapshot whose processing fails is kept as FAILED (the rules skip it) and the
        session goes on; with no usable snapshot at all the session is aborted and
        ``NoSnapshots`` raised ("no data", never "everybody absent").
        """
        if not images:
            raise ValueError("a session needs at least one snapshot")
        sid = self.start(course_code, camera_name=camera, plan={"snapshots": len(images), "source": camera}, actor=actor)
        gallery = self.gallery(sid)
        for k, img in enumerate(images):
            snap_id = self.store_snapshot(sid, k, img, camera=camera)
            try:
                result: PipelineResult | Exception = self.process_snapshot(snap_id, gallery)
            except Exception as exc:  # stored as FAILED by process_snapshot
                result = exc
            if on_processed:
                on_processed(k, img, result)
        try:
            return self.finalize(sid, n_snapshots=len(images), actor=actor)
        except NoSnapshots as exc:
            self.abort(sid, actor=actor, reason=str(exc))
            raise

    def abort(self, session_id: int, *, actor: str, reason: str) -> None:
        """Close a session without attendance records (nothing usable was captured)."""
        with session_scope(self.url) as s:
            sess = s.get(ClassSession, session_id)
            if sess is None or sess.status == SessionStatus.COMPLETED:
                return
            sess.status = SessionStatus.ABORTED
            sess.ended_at = utcnow()
            repo.audit(s, actor, "session.abort", "session", session_id, reason=reason[:300])

    def correct_face(self, observation_id: int, student_number: str, *, actor: str,
                     add_to_gallery: bool = False) -> tuple[SessionOutcome, SampleOutcome | None]:
        """"That face is student X" (the seed's *Retry Wrong Face*), then re-decide the session.

        The face is assigned to X by hand (one-to-one: another face of the same snapshot
        that was X becomes unknown); overrides already made are kept. With
        ``add_to_gallery`` the face crop also goes through the enrollment quality gate into
        X's gallery, only if X has consented.
        """
        with session_scope(self.url) as s:
            o = s.get(FaceObservation, observation_id)
            if o is None:
                raise LookupError(f"no face observation {observation_id}")
            snap = o.snapshot
            course = snap.session.course
            st = repo.get_student(s, student_number)
            if st.id not in {x.id for x in repo.roster(s, course)}:
                raise ValueError(f"{student_number} is not on the roster of {course.code}")
            for other in snap.observations:
                if other.id != o.id and other.student_id == st.id:
                    other.student_id, other.similarity, other.match_source = None, None, None
            previous = o.student_id
            o.student_id = st.id
            o.match_source = "manual"
            o.similarity = next((float(v) for t, v in (o.top_matches or []) if t == student_number), None)
            repo.audit(s, actor, "face.correct", "observation", observation_id, student=student_number,
                       previous=previous, session=snap.session_id)
            crop_rel, session_id, consent = o.crop_path, snap.session_id, st.has_consent
        sample: SampleOutcome | None = None
        if add_to_gallery:
            if not consent:
                sample = SampleOutcome("snapshot face", False, [f"{student_number} has not consented to enrollment"])
            elif not crop_rel:
                sample = SampleOutcome("snapshot face", False, ["the face crop is no longer stored"])
            else:
                with session_scope(self.url) as s:
                    (sample,) = enroll_images(s, repo.get_student(s, student_number),
                                              [("snapshot face", self.store.load(crop_rel))], self.pipeline,
                                              self.store, self.settings, source="correction", actor=actor)
        return self.finalize(session_id, actor=actor), sample

    def resume_or_close(self, session_id: int, *, actor: str = "system") -> SessionOutcome:
        """After a restart: process snapshots that were stored but not processed, record the
        ones never taken as missing, then decide with the data there is."""
        with session_scope(self.url) as s:
            sess = s.get(ClassSession, session_id)
            if sess is None:
                raise LookupError(f"no session {session_id}")
            pending = [x.id for x in sess.snapshots if x.status == SnapshotStatus.CAPTURED]
            have = {x.index for x in sess.snapshots}
            n = int((sess.capture_plan or {}).get("snapshots") or (max(have, default=-1) + 1))
        for k in range(n):
            if k not in have:
                self.record_missing(session_id, k, "not captured: the session was interrupted")
        gallery = self.gallery(session_id)
        for snap_id in pending:
            self.process_snapshot(snap_id, gallery)
        return self.finalize(session_id, n_snapshots=n, actor=actor)


def _viewable(crop: np.ndarray) -> np.ndarray:
    h, w = crop.shape[:2]
    if min(h, w) >= MIN_STORED_CROP or min(h, w) == 0:
        return crop
    s = MIN_STORED_CROP / min(h, w)
    return cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
