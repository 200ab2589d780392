"""Class sessions, orchestrated: start → store each snapshot → process it → finalize (or abort).

The same path serves every caller: ``aas session run`` (given images), ``aas session
capture`` and the Live Session page (a camera through ``services.camera_session``), and a
resumed session after a restart. Every step commits on its own, so a crash loses at most
the step in flight; attendance records are written in one transaction (never half-written).

What each step delegates: rows from pipeline output to ``services.observations``; the
decision to the pure ``domain.abstention.decide_with_abstention`` (``domain.decision.decide_session``
with "could not tell" for faces too poor to identify); review and corrections live in
``services.review``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.retry import retry_db, retrying
from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
    Student,
    utcnow,
)
from aas_core.domain.course_config import SessionPlan, draw_seed
from aas_core.domain.abstention import decide_with_abstention
from aas_core.media.store import ImageStore, discard_on_rollback
from aas_core.services import checkin, observations
from aas_core.services.enrollment import ensure_embeddings
from aas_core.vision.face_quality import POOR_QUALITY, measure_all
from aas_core.vision.fusion import fuse_results
from aas_core.vision.matching import Gallery, too_close_to_call, veto_by_negatives
from aas_core.vision.templates import roster_gallery
from aas_core.vision.pipeline import Pipeline, PipelineResult

log = logging.getLogger(__name__)

OnProcessed = Callable[[int, np.ndarray, "PipelineResult | Exception"], None]


class NoSnapshots(RuntimeError):
    """Finalising a session that has no processed snapshot."""

    def __init__(self, message: str, session_id: int) -> None:
        super().__init__(message)
        self.session_id = session_id


class StorageFailed(RuntimeError):
    """An image of a snapshot could not be written (a full disk, a data dir that is not writable).

    By then the snapshot is FAILED with the error text and none of its face crops is left on disk.
    """

    def __init__(self, message: str, session_id: int) -> None:
        super().__init__(message)
        self.session_id = session_id


class AlreadyDecided(RuntimeError):
    """``finalize(..., if_running=True)`` on a session that is no longer running (another worker
    decided it first, or it was aborted)."""

    def __init__(self, message: str, session_id: int) -> None:
        super().__init__(message)
        self.session_id = session_id


class SessionFailed(RuntimeError):
    """``run_from_images`` could not complete a session it had started (a storage failure, the
    database lost for good). The message is one line saying what failed and what became of the
    session: ``aborted`` (closed without attendance) or still open when even that failed."""

    def __init__(self, message: str, session_id: int, *, aborted: bool) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.aborted = aborted


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (a driver error's text, without SQLAlchemy's SQL and links)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"[:300]


@dataclass
class SessionOutcome:
    session_id: int
    statuses: dict[str, str]
    unknown_faces: int
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    # Students a person must look at (a snapshot that could not tell, a status resting on seat
    # continuity alone); their reasons are stored in AttendanceRecord.review_reasons.
    needs_review: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "statuses": self.statuses, "unknown_faces": self.unknown_faces,
                "snapshots": self.snapshots, "needs_review": self.needs_review}


@dataclass(frozen=True)
class Recognition:
    """What a session's snapshots are matched against: the roster gallery and the course threshold."""

    gallery: Gallery | None
    threshold: float | None  # None: the pipeline's (settings or the embedder's calibrated default)
    # Students of the session's starting gallery whose consent has gone since (withdrawn or
    # erased): their faces are withheld, not stored as unknown (observations.withhold_suppressed).
    suppressed: Gallery | None = None
    # Standing corrections ("that face is not X"), per student: a match to X closer to one of
    # these than to X's own samples is vetoed (``vision.matching.veto_by_negatives``).
    negatives: dict[str, np.ndarray] = field(default_factory=dict)


#: Starting galleries kept per SessionService (sessions whose gallery diff is still needed);
#: the oldest is forgotten beyond this, a service normally runs one session at a time.
_KEEP_STARTING_GALLERIES = 16


class SessionService:
    """Operations on one database + image store with one pipeline."""

    def __init__(self, url: str, store: ImageStore, pipeline: Pipeline, settings: Settings, *,
                 seat_continuity: bool = True, abstain: bool = True, stack_bursts: bool = False) -> None:
        self.url = url
        self.seat_continuity = seat_continuity
        # stack_bursts: a burst's faces are also embedded from their pixels averaged over the
        # frames (vision.fusion.stack_region). Off: on the hard benchmark it moved 3 statuses of
        # 672 for one more embedding batch per snapshot (docs/EVALUATION.md "Recognition
        # levers"), so the benchmarks switch it on to compare.
        self.stack_bursts = stack_bursts
        # abstain: an unknown face too poor to identify makes the students it could be "could not
        # tell" for its snapshot instead of "not seen" (domain.abstention); off = the decision
        # before it (benchmarks compare the two on the same observations).
        self.abstain = abstain
        self.store = store
        self.pipeline = pipeline
        self.settings = settings
        # session id -> (student numbers, embeddings) of the gallery the session started with, in
        # memory only (never stored: after a withdrawal these are the only copy, and they go with
        # the process). The camera session's worker thread reads it, so it has a lock.
        self._starting_galleries: OrderedDict[
            int, tuple[list[str], np.ndarray, tuple[list[str], np.ndarray] | None]] = OrderedDict()
        self._galleries_lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, course_code: str, *, plan: SessionPlan | None = None, seed: int | None = None,
              camera_name: str | None = None, actor: str = "system") -> int:
        """Open a session (committed at once), then embed roster photos the model lacks.

        Without a ``plan`` the session expects the course's snapshot count of given images.
        """
        session_id = open_session(self.url, course_code, plan=plan, seed=seed, camera_name=camera_name,
                                  profile=self.pipeline.config.profile, actor=actor)
        # Profile switches: embed stored samples with this pipeline's model before matching,
        # outside the transaction above (models run for seconds; see ensure_embeddings).
        ensure_embeddings(self.url, course_code, self.pipeline, self.store, self.settings)
        try:
            self.recognition(session_id)  # remember the starting gallery now, not at the first snapshot
        except Exception:  # noqa: BLE001 - the session is committed; the first snapshot reads it instead
            log.warning("session %s: reading the starting gallery failed", session_id, exc_info=True)
        return session_id

    def started_at(self, session_id: int) -> datetime:
        with session_scope(self.url) as s:
            return self._session(s, session_id).started_at

    def store_snapshot(self, session_id: int, index: int, image: np.ndarray, *, camera: str | None = None,
                       light_used: bool = False, captured_at: datetime | None = None,
                       scheduled_offset_s: float | None = None) -> int:
        """Write the image (evidence) and its row and commit, before any processing.

        If the image cannot be written (``OSError``: disk full, ...) the snapshot is recorded as
        FAILED with the error and :class:`StorageFailed` raised.
        """
        try:
            rel = self.store.save("snapshots", image, quality=95)
        except OSError as exc:
            error = f"could not store the snapshot image: {exc}"
            self._record_failed(session_id, index, error, camera)
            raise StorageFailed(f"snapshot {index + 1} of session {session_id}: {error}", session_id) from exc
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

    def _record_failed(self, session_id: int, index: int, error: str, camera: str | None) -> None:
        """A snapshot whose image could not be stored: FAILED with the error (a retake of a missing
        or failed one updates it; one already stored is left as it is)."""
        with session_scope(self.url) as s:
            old = s.scalar(select(Snapshot).where(Snapshot.session_id == session_id, Snapshot.index == index))
            if old is None:
                s.add(Snapshot(session_id=session_id, index=index, status=SnapshotStatus.FAILED, error=error[:2000],
                               camera=camera))
            elif old.status in (SnapshotStatus.MISSING, SnapshotStatus.FAILED):
                old.status, old.error = SnapshotStatus.FAILED, error[:2000]

    def record_missing(self, session_id: int, index: int, error: str, camera: str | None = None) -> None:
        record_missing(self.url, session_id, index, error, camera)

    def recognition(self, session_id: int) -> Recognition:
        """The current gallery and threshold, and the students to withhold (see ``Recognition``).

        The first call for a session remembers its gallery as the starting one; later calls
        compare: a student of the starting gallery missing now *because* their consent went
        (withdrawn, or the student erased) is suppressed. One who still consents but left the
        roster or lost their samples is simply no longer matched.
        """
        name = self.pipeline.embedder.name
        with session_scope(self.url) as s:
            course = self._session(s, session_id).course
            ids, embs = repo.gallery_arrays(s, course, name)
            classroom = (repo.classroom_arrays(s, course, name)
                         if course.config.recognition.classroom_templates else None)
            threshold = course.config.recognition.threshold
            negatives = repo.negatives_arrays(s, course, name)
            with self._galleries_lock:
                start_ids, start_embs, start_cls = self._starting_galleries.setdefault(
                    session_id, (ids, embs, classroom))
                self._starting_galleries.move_to_end(session_id)
                while len(self._starting_galleries) > _KEEP_STARTING_GALLERIES:
                    self._starting_galleries.popitem(last=False)
            gone = set(start_ids) - set(ids)
            if gone:
                gone -= set(s.scalars(select(Student.student_number).where(
                    Student.student_number.in_(gone), Student.consent_given_at.is_not(None))))
        rows = [k for k, sn in enumerate(start_ids) if sn in gone]
        suppressed = None
        if rows:
            # Withheld as they would have been matched: portraits and their classroom templates.
            cls_rows = [k for k, sn in enumerate(start_cls[0]) if sn in gone] if start_cls else []
            suppressed = roster_gallery([start_ids[k] for k in rows], start_embs[rows], name,
                                        ([start_cls[0][k] for k in cls_rows], start_cls[1][cls_rows])
                                        if cls_rows else None)
        return Recognition(roster_gallery(ids, embs, name, classroom), threshold, suppressed, negatives)

    def process_snapshot(self, snapshot_id: int, recognition: Recognition | None = None, *,
                         image: np.ndarray | None = None, frames: Sequence[np.ndarray] | None = None) -> PipelineResult:
        """Run the pipeline on a snapshot and store its face observations.

        ``recognition``: gallery and threshold to match against (read now when not given).
        ``image``: the frame as captured (processed as is; the stored JPEG is the evidence).
        Without it the stored file is read (a resumed session).
        ``frames``: the snapshot's burst as captured (more than one: :meth:`_run_burst`; the
        stored image becomes the burst's best frame).
        """
        return self._process_snapshot(snapshot_id, recognition, image=image, frames=frames)[0]

    def _process_snapshot(self, snapshot_id: int, recognition: Recognition | None = None, *,
                          image: np.ndarray | None = None,
                          frames: Sequence[np.ndarray] | None = None) -> tuple[PipelineResult, np.ndarray]:
        """``process_snapshot``, also returning the image the stored snapshot now shows."""
        burst: dict[str, Any] | None = None
        with session_scope(self.url) as s:
            snap = s.get(Snapshot, snapshot_id)
            if snap is None or not snap.image_path:
                raise LookupError(f"snapshot {snapshot_id} has no stored image")
            rel, session_id = snap.image_path, snap.session_id
        if frames is not None and len(frames) == 1:
            image, frames = frames[0], None
        if image is None and not frames:
            image = self.store.load(rel)
        recognition = recognition or self.recognition(session_id)
        try:
            if frames:
                result, stored, burst = self._run_burst(frames, recognition)
                image = frames[stored]
            else:
                result = self.pipeline.run(image, recognition.gallery, recognition.threshold)
        except Exception as exc:
            with session_scope(self.url) as s:
                snap = s.get(Snapshot, snapshot_id)
                snap.status = SnapshotStatus.FAILED
                snap.error = f"{exc.__class__.__name__}: {exc}"[:2000]
            raise
        # Measured on the frame the boxes belong to, before any redaction of the stored copy.
        qualities = measure_all(image, result.faces)
        if burst is not None and burst["stored_frame"]:
            # The evidence becomes the burst's best frame (the first was stored at capture, before
            # processing). If it cannot be written the first stays: it shows the same scene.
            try:
                self.store.overwrite(rel, image, quality=95)
            except OSError as exc:
                log.warning("snapshot %s: keeping the burst's first frame: %s", snapshot_id, exc)
                burst["stored_frame"], image = 0, frames[0]  # type: ignore[index]
        withheld = observations.withhold_suppressed(result, recognition.suppressed, self.store, rel, image)
        # A face within MIN_LEAD of a second student is not named: both are "could not tell".
        ambiguous = too_close_to_call(result.match) if result.match else {}
        for i in ambiguous:
            result.match.assigned[i] = None  # type: ignore[union-attr]  # counts and drawings agree
        vetoed = veto_by_negatives(result.match, result.embeddings, recognition.negatives) if result.match else {}
        n_crops = len(result.crops.crops)
        try:
            # One all-or-nothing batch: a write that fails (disk full) removes the crops of this
            # snapshot already written, so a failed snapshot leaves no face image behind.
            paths = self.store.save_many("crops", [*(observations.viewable_crop(c) for c in result.crops.crops),
                                                   *result.crops.enhanced])
        except OSError as exc:
            error = f"could not store the face crops: {exc}"
            index = self._mark_failed(snapshot_id, error)
            raise StorageFailed(f"snapshot {index + 1} of session {session_id}: {error}", session_id) from exc
        crop_paths, enh_paths = paths[:n_crops], paths[n_crops:]
        with session_scope(self.url) as s:
            for p in [*crop_paths, *enh_paths]:
                if p:
                    discard_on_rollback(s, self.store, p)
            named = {a for a in result.match.assigned if a} if result.match else set()
            # The row lock serialises two deliveries of the same snapshot (Celery redelivers a
            # task whose worker died; two workers may then process it at once): the second
            # waits here, then sees and replaces the first one's observations, never adds to them.
            snap = s.get(Snapshot, snapshot_id, with_for_update=True)
            # Re-processing replaces the observations: their crop files go once this commits.
            replaced = [p for o in snap.observations for p in (o.crop_path, o.enhanced_path) if p]
            snap.observations.clear()
            observations.insert_rows(s, snapshot_id, observations.observation_rows(
                result, observations.student_ids(s, named), crop_paths, enh_paths, withheld, qualities, vetoed,
                ambiguous))
            snap.status = SnapshotStatus.PROCESSED
            snap.error = None
            snap.info = observations.snapshot_info(result, self.pipeline.config.profile)
            if burst is not None:
                snap.info = {**snap.info, "burst": burst}
        for p in replaced:
            self.store.delete(p)
        return result, image

    def _run_burst(self, frames: Sequence[np.ndarray],
                   recognition: Recognition) -> tuple[PipelineResult, int, dict[str, Any]]:
        """One snapshot from a burst: detect and embed every frame without matching, follow the
        faces through the frames and fuse their embeddings by quality (``vision.fusion``), then
        match the fused embeddings against the gallery once, with the threshold and one-to-one
        assignment a single frame gets. With ``stack_bursts``, faces seen in several frames are
        also embedded from their stacked pixels. Returns the result, the index of the frame to keep as
        the snapshot image, and what the snapshot row records about the burst.
        """
        results, used = [], []
        error: Exception | None = None
        for k, frame in enumerate(frames):
            try:
                results.append(self.pipeline.run(frame, None, recognition.threshold))
                used.append(k)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not cost the snapshot its others
                log.warning("frame %d of %d of a burst could not be processed: %s", k + 1, len(frames), exc)
                error = error or exc
        if not results:
            assert error is not None
            raise error
        result, fused, stored = fuse_results([frames[k] for k in used], results,
                                             embed_stacked=self.pipeline.embed_regions if self.stack_bursts else None)
        t0 = time.perf_counter()
        if recognition.gallery is not None and len(recognition.gallery):
            result.match = recognition.gallery.match(result.embeddings, threshold=result.threshold,
                                                     model_name=result.model_name)
        dt = (time.perf_counter() - t0) * 1000
        for key in ("match", "total"):
            result.timings_ms[key] = result.timings_ms.get(key, 0.0) + dt
        info = {"frames": len(frames), "processed": len(used), "stored_frame": used[stored],
                "seen_in": [int(n) for n in fused.frames_seen],
                "quality": [round(float(q), 3) for q in fused.quality]}
        return result, used[stored], info

    def _mark_failed(self, snapshot_id: int, error: str) -> int:
        """Set a stored snapshot FAILED with ``error``; returns its index."""
        with session_scope(self.url) as s:
            snap = s.get(Snapshot, snapshot_id)
            snap.status = SnapshotStatus.FAILED
            snap.error = error[:2000]
            return snap.index

    def finalize(self, session_id: int, *, actor: str = "system", if_running: bool = False) -> SessionOutcome:
        """Decide every rostered student's status from the stored observations, in one transaction.

        The session row is locked first, so two deciders (two workers that processed the last
        snapshots at once) run one after the other; with ``if_running`` the second raises
        :class:`AlreadyDecided` instead of deciding again.
        """
        with session_scope(self.url) as s:
            sess = self._session(s, session_id, lock=True)
            if if_running and sess.status != SessionStatus.RUNNING:
                raise AlreadyDecided(f"session {session_id} is already {sess.status.value}", session_id)
            course = sess.course
            n = session_plan(sess).snapshots
            snaps = {x.index: x for x in sess.snapshots}
            ordered = [snaps.get(k) for k in range(n)]
            students = repo.roster(s, course)
            numbers_by_id = {st.id: st.student_number for st in students}
            ids_by_number = {v: k for k, v in numbers_by_id.items()}
            rules = course.config.rules
            loose = getattr(self.pipeline.embedder, "loose_threshold", None)
            if self.seat_continuity:
                observations.apply_seat_continuity(ordered, numbers_by_id, ids_by_number, loose,
                                                   rules.min_confidence)
                s.flush()
            usable = [k for k, x in enumerate(ordered) if x is not None and x.status == SnapshotStatus.PROCESSED]
            unclear, seats = (observations.abstention_evidence(ordered, numbers_by_id, POOR_QUALITY,
                                                               rules.min_confidence)
                              if self.abstain else ([], {}))
            # The camera's faces and the students' verified self check-ins (services.checkin).
            seen = observations.sightings(ordered, numbers_by_id) + checkin.sightings(s, sess.id, numbers_by_id)
            session_decision = decide_with_abstention(n, usable, seen,
                                                      list(ids_by_number), rules, unclear=unclear, seats=seats,
                                                      loose_floor=loose)
            decided = session_decision.students if session_decision is not None else None
            if decided is None or session_decision is None:
                # No usable snapshot is "no data", never "everybody absent".
                raise NoSnapshots(f"session {session_id}: no snapshot was captured and processed; "
                                  "attendance cannot be decided (retake or close the session)", session_id)
            existing = {r.student_id: r for r in sess.records}
            for number, d in decided.items():
                rec = existing.get(ids_by_number[number])
                if rec is None:
                    s.add(AttendanceRecord(session_id=sess.id, student_id=ids_by_number[number],
                                           auto_status=d.status.value, final_status=d.status.value,
                                           presence=d.presence, best_similarity=d.best_similarity,
                                           review_reasons=session_decision.needs_review.get(number)))
                else:  # re-finalising keeps instructor overrides
                    rec.auto_status = d.status.value
                    rec.presence = d.presence
                    rec.best_similarity = d.best_similarity
                    rec.review_reasons = session_decision.needs_review.get(number)
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
                                  snaps_json, list(session_decision.needs_review))

    def finalize_or_abort(self, session_id: int, *, actor: str = "system",
                          if_running: bool = False) -> SessionOutcome | None:
        """``finalize``; when no snapshot could be processed the session is aborted and None returned."""
        try:
            return self.finalize(session_id, actor=actor, if_running=if_running)
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
    def run_from_images(self, course_code: str, images: Sequence[np.ndarray | Sequence[np.ndarray]], *,
                        actor: str = "system", camera: str = "upload",
                        on_processed: OnProcessed | None = None) -> SessionOutcome:
        """The whole session path from already-taken images (CLI, uploads, demos, tests).

        Each item is one snapshot: an image, or a burst (a list of frames, processed as one
        snapshot by fusion; ``on_processed`` gets the frame kept as the snapshot image).

        A snapshot whose processing fails is kept as FAILED (the rules skip it) and the
        session goes on; with no usable snapshot at all the session is aborted and
        ``NoSnapshots`` raised ("no data", never "everybody absent"). A storage failure (disk
        full), or a database step still failing after its retries, aborts the session and
        raises :class:`SessionFailed` (never a session left RUNNING when it can be closed).
        """
        if not images:
            raise ValueError("a session needs at least one snapshot")
        bursts = [[img] if isinstance(img, np.ndarray) else list(img) for img in images]
        if not all(bursts):
            raise ValueError(f"snapshot {next(k for k, b in enumerate(bursts, 1) if not b)} has no frame")
        sid = self.start(course_code, camera_name=camera, plan=SessionPlan.for_images(len(images), camera), actor=actor)
        # From here on the session exists: whatever fails, it must not be left RUNNING. Every
        # step is a unit of work retried on a lost database connection (as for camera sessions).
        step = "reading the roster gallery"
        try:
            recognition = retry_db(lambda: self.recognition(sid))
            for k, frames in enumerate(bursts):
                step = f"storing snapshot {k + 1}"
                img = frames[0]  # stored before processing; a burst's best frame replaces it then
                snap_id = retrying(self.store_snapshot)(sid, k, img, camera=camera)
                step = f"processing snapshot {k + 1}"
                try:
                    result: PipelineResult | Exception
                    result, img = retrying(self._process_snapshot)(snap_id, recognition, frames=frames)
                except StorageFailed:
                    raise  # the disk, not this image: the next snapshots would fail the same way
                except Exception as exc:  # stored as FAILED by process_snapshot
                    result = exc
                if on_processed:
                    on_processed(k, img, result)
            step = "finalizing"
            outcome = retry_db(lambda: self.finalize_or_abort(sid, actor=actor))
        except Exception as exc:
            raise self._close_after_failure(sid, actor, exc, step) from exc
        if outcome is None:
            raise NoSnapshots(f"session {sid}: no snapshot could be processed; the session was closed without "
                              "attendance", sid)
        return outcome

    def _close_after_failure(self, session_id: int, actor: str, exc: Exception, step: str) -> SessionFailed:
        """Abort a session a failure stopped (retried like the other steps); say in one line what
        failed and whether the session is closed."""
        what = str(exc) if isinstance(exc, StorageFailed) else f"{step} failed: {one_line(exc)}"
        try:
            retry_db(lambda: self.abort(session_id, actor=actor, reason=what))
        except Exception as abort_exc:  # noqa: BLE001 - the database is gone for good: say so, no traceback
            return SessionFailed(f"session {session_id}: {what}; it could not be closed either "
                                 f"({one_line(abort_exc)}): run `aas session resume {session_id}` "
                                 "once the database is reachable", session_id, aborted=False)
        return SessionFailed(f"session {session_id} aborted without attendance: {what}", session_id, aborted=True)

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
    def _session(s: Any, session_id: int, *, lock: bool = False) -> ClassSession:
        sess = s.get(ClassSession, session_id, with_for_update=lock or None)
        if sess is None:
            raise repo.NotFound(f"no session {session_id}")
        return sess


def record_missing(url: str, session_id: int, index: int, error: str, camera: str | None = None) -> bool:
    """Record snapshot ``index`` as MISSING with ``error`` unless it already has a row; no model
    is needed (the scheduler records snapshots whose time passed while it was down). Returns
    whether a row was written."""
    with session_scope(url) as s:
        if s.scalar(select(Snapshot).where(Snapshot.session_id == session_id, Snapshot.index == index)):
            return False
        s.add(Snapshot(session_id=session_id, index=index, status=SnapshotStatus.MISSING, error=error[:2000],
                       camera=camera))
        return True


def open_session(url: str, course_code: str, *, plan: SessionPlan | None = None, seed: int | None = None,
                 camera_name: str | None = None, profile: str | None = None, actor: str = "system",
                 meeting_start: datetime | None = None, started_at: datetime | None = None) -> int:
    """Insert a RUNNING session row (committed) and return its id; no model is needed.

    ``meeting_start`` (naive UTC) ties the session to a timetable meeting: the unique index on
    (course, meeting_start) makes a second one for the same meeting fail with
    ``IntegrityError`` (the scheduler's exactly-once). ``started_at``: when its plan counts
    from (the meeting's start for scheduled sessions; now by default).
    """
    seed = draw_seed() if seed is None else seed
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        plan = plan or SessionPlan.for_images(course.config.plan.snapshots)
        sess = ClassSession(course_id=course.id, status=SessionStatus.RUNNING, capture_plan=plan, seed=seed,
                            camera_name=camera_name, profile=profile, meeting_start=meeting_start,
                            started_at=started_at or utcnow())
        s.add(sess)
        s.flush()
        repo.audit(s, actor, "session.start", "session", sess.id, course=course_code,
                   **({"meeting_start": meeting_start.isoformat() + "Z"} if meeting_start else {}))
        return sess.id


def session_plan(sess: ClassSession) -> SessionPlan:
    """The snapshot count and schedule a session was started with."""
    # Every session since migration 0004 has a plan; this covers rows written by hand.
    return sess.capture_plan or SessionPlan.for_images(max([x.index + 1 for x in sess.snapshots] + [1]))
