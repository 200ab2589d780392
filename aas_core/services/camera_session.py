"""A class session driven by a camera: the capture runner wired to the session service.

Each snapshot is stored and committed by ``SessionService.store_snapshot`` the moment the
runner delivers it (runner thread), then processed by a worker thread so processing never
delays the next capture; database calls are retried on transient errors (a MariaDB
restart). When the plan is done (or ``stop`` is called) attendance is decided once; with no
usable snapshot the session is aborted, never "everybody absent". Killing the process loses
only the snapshot in flight; ``SessionService.resume_or_close`` later processes what was
stored and closes the session with the data it has. Used by ``aas session capture`` and by
the Live Session page.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from aas_core.capture.base import Camera
from aas_core.capture.runner import SessionRunner
from aas_core.db.retry import retrying
from aas_core.domain.course_config import PlanConfig, SessionPlan, camera_session_plan, draw_seed
from aas_core.redact import redact_text
from aas_core.services.rooms import record_health
from aas_core.services.sessions import SessionOutcome, SessionService

log = logging.getLogger(__name__)

_DECIDE = object()  # worker-queue sentinel: everything captured is queued; decide now


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


# --- the steps of one snapshot, shared by CameraSession and the scheduler's LocalWork ------------

def store_captured(svc: SessionService, session_id: int, index: int, frames: Sequence[np.ndarray], *,
                   captured_at: datetime, camera: str, light_used: bool, offset_s: float | None) -> int:
    """Commit a captured burst's evidence (its first frame) and note the camera's good grab.

    Processing may later replace the stored image with the burst's best frame; the other frames
    live in memory only until processed (one stored image per snapshot: erasure and the review
    know exactly one). Retried on transient database errors.
    """
    snap_id = retrying(svc.store_snapshot)(session_id, index, frames[0], camera=camera, light_used=light_used,
                                           captured_at=_naive_utc(captured_at), scheduled_offset_s=offset_s)
    record_health(svc.url, camera, ok=True, at=_naive_utc(captured_at))
    return snap_id


def note_missing(svc: SessionService, session_id: int, index: int, error: str, *, camera: str | None = None,
                 camera_fault: bool = True) -> str:
    """Record snapshot ``index`` missing with ``error`` (redacted: it is stored and shown) and,
    when the camera is to blame, note the error in its health. Returns the stored text."""
    error = redact_text(error)
    retrying(svc.record_missing)(session_id, index, error)
    if camera and camera_fault:
        record_health(svc.url, camera, ok=False, error=error)
    return error


def process_captured(svc: SessionService, snapshot_id: int, frames: Sequence[np.ndarray] | None) -> Any:
    """Process a stored snapshot: the burst as captured when given, else the stored image (a
    resumed snapshot). The gallery is read again each time (one query): a student who withdrew
    consent or was erased during the lecture is no longer matched from then on. A pipeline
    failure leaves the snapshot FAILED (``SessionService``) and is raised."""
    return retrying(svc.process_snapshot)(snapshot_id, None, frames=list(frames) if frames else None)


class CameraSession:
    """Start (or resume) a session and capture its plan in the background."""

    def __init__(self, svc: SessionService, camera: Camera, plan: SessionPlan, *, course_code: str,
                 camera_name: str, seed: int | None = None, settle_s: float = 1.0, capture_window_s: float = 60.0,
                 session_id: int | None = None, actor: str = "system",
                 on_event: Callable[[str, dict[str, Any]], None] | None = None, **runner_kw: Any) -> None:
        if not plan.offsets_s:
            raise ValueError("a camera session needs a schedule (SessionPlan.for_camera)")
        self.svc = svc
        self.camera = camera
        self.course_code = course_code
        self.actor = actor
        self.plan = plan
        self.offsets = list(plan.offsets_s)
        self.on_event = on_event or (lambda kind, info: None)
        # The name is stored on the session and every snapshot row: never a URL with credentials.
        camera_name = redact_text(camera_name)
        resuming = session_id is not None
        if session_id is None:
            session_id = svc.start(course_code, camera_name=camera_name, plan=plan, seed=seed, actor=actor)
        self.session_id = session_id
        self.started_at = svc.started_at(session_id)
        self.outcome: SessionOutcome | None = None
        self.decided = threading.Event()
        # Set by stop() before deciding: a runner thread that outlived stop() (its light
        # request still timing out) must not add snapshots to a session already decided.
        self._closing = threading.Event()
        self._todo: queue.Queue[Any] = queue.Queue()
        self._worker = threading.Thread(target=self._process_loop, name=f"process-session-{session_id}", daemon=True)
        self.runner = SessionRunner(camera, self.offsets, on_snapshot=self._snapshot, on_missing=self._missing,
                                    on_done=lambda: self._todo.put(_DECIDE), settle_s=settle_s,
                                    capture_window_s=capture_window_s, camera_label=camera_name,
                                    # a fresh plan counts from when capture starts; a resumed
                                    # one from the session's recorded start
                                    session_started_at=self.started_at.replace(tzinfo=UTC) if resuming else None,
                                    session_end_s=plan.plan.session_length_s if plan.plan else None,
                                    # the burst the session was started with (its SessionPlan), not
                                    # the course's current setting
                                    burst_frames=plan.burst_frames, burst_interval_s=plan.burst_interval_s,
                                    **runner_kw)

    # --- runner thread -----------------------------------------------------------------------
    def _snapshot(self, index: int, frames: list[np.ndarray], captured_at: datetime, camera: str,
                  light_used: bool) -> None:
        if self._closing.is_set():
            log.warning("session %s: snapshot %d arrived after stop; not stored", self.session_id, index + 1)
            return
        snap_id = store_captured(self.svc, self.session_id, index, frames, captured_at=captured_at, camera=camera,
                                 light_used=light_used, offset_s=self.offsets[index])
        self.on_event("stored", {"index": index, "snapshot_id": snap_id})
        self._todo.put((index, snap_id, frames))  # processed as captured, not re-read from the JPEG

    def _missing(self, index: int, error: str) -> None:
        if self._closing.is_set():
            return
        # "not taken: its time passed ..." (runner) is about the schedule, not the camera's health
        error = note_missing(self.svc, self.session_id, index, error, camera=self.runner.camera_label,
                             camera_fault=not error.startswith("not taken"))
        self.on_event("missing", {"index": index, "error": error})

    # --- worker thread -----------------------------------------------------------------------
    def _process_loop(self) -> None:
        while True:
            item = self._todo.get()
            if item is _DECIDE:
                self._decide()
                return
            index, snap_id, frames = item
            try:
                result = process_captured(self.svc, snap_id, frames)
                self.on_event("processed", {"index": index, "snapshot_id": snap_id, "faces": len(result.faces)})
            except Exception as exc:  # stored as FAILED on the snapshot row; capture goes on
                log.exception("processing snapshot %s failed", snap_id)
                self.on_event("failed", {"index": index, "error": redact_text(f"{exc.__class__.__name__}: {exc}")})

    def _decide(self) -> None:
        try:
            self.outcome = retrying(self.svc.finalize_or_abort)(self.session_id, actor=self.actor)
        except Exception as exc:
            log.exception("deciding session %s failed", self.session_id)
            self.on_event("failed", {"index": -1, "error": redact_text(f"{exc.__class__.__name__}: {exc}")})
        finally:
            self.decided.set()
            self.on_event("decided", {"index": -1, "session_id": self.session_id})

    # --- control -------------------------------------------------------------------------------
    def start(self, skip_indices: Sequence[int] = ()) -> None:
        self._worker.start()
        self.runner.start(skip_indices)

    @property
    def finished(self) -> bool:
        return self.decided.is_set()

    def stop(self, *, close_camera: bool = False, runner_timeout_s: float = 5.0) -> SessionOutcome | None:
        """Stop capturing and decide from the snapshots taken so far (None = aborted).

        Returns promptly even when the camera is stuck: the runner abandons a grab in
        progress at once; if its thread has still not ended after ``runner_timeout_s`` (a
        light request hanging on a dead camera), the session is decided without it and
        anything that thread delivers later is dropped.
        """
        if not self.runner.stop(runner_timeout_s):
            log.warning("session %s: capture thread still busy after %.0f s; deciding without it",
                        self.session_id, runner_timeout_s)
        self._closing.set()
        if not self.decided.is_set():
            self._todo.put(_DECIDE)  # the runner does not call on_done after stop()
        self._worker.join()
        if close_camera:
            try:
                self.camera.close()
            except Exception:  # noqa: BLE001 - closing is best effort; the outcome is what matters
                log.warning("closing the camera of session %s failed", self.session_id, exc_info=True)
        return self.outcome

    def wait(self, timeout_s: float | None = None) -> SessionOutcome | None:
        """Wait for the plan to finish and attendance to be decided (None = aborted)."""
        self.runner.join(timeout_s)
        if not self.decided.wait(timeout_s):
            raise TimeoutError(f"session {self.session_id} still running")
        return self.outcome


def start_course_capture(svc: SessionService, camera: Camera, plan: PlanConfig, *, course_code: str, camera_name: str,
                         now: bool = False, offsets_s: Sequence[float] | None = None, seed: int | None = None,
                         actor: str = "system", start: bool = True, **kw: Any) -> CameraSession:
    """A camera session on the course's plan (``aas session capture`` and the Live Session page).

    The schedule comes from ``domain.course_config.camera_session_plan`` with the stored seed,
    so both callers capture the course's snapshot count at the same offsets.
    """
    seed = draw_seed() if seed is None else seed
    session_plan = camera_session_plan(plan, seed, camera_name, now=now, offsets_s=list(offsets_s or []) or None)
    run = CameraSession(svc, camera, session_plan, course_code=course_code, camera_name=camera_name, seed=seed,
                        actor=actor, **kw)
    if start:
        run.start()
    return run
