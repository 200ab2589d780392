"""The task bodies of a session, as plain functions: capture a snapshot, process it, decide.

The same functions run in-process (no broker: ``dispatch.InProcess`` calls them directly) and
inside ``aas worker`` processes (``tasks.app`` wraps each in a Celery task). Everything they
need is read from the shared database and the shared data dir, never from the message: a
message carries ids only, so a redelivered or duplicated one finds the current state and
does the right thing:

* ``capture_snapshot(session_id, index)`` — grab the burst at the snapshot's time (light on for
  the burst, off after), store it (``SessionService.store_snapshot``) or record it missing (a
  camera that is down, a capture that ran too late), then hand it on for processing. A snapshot
  already stored is not taken again.
* ``process_snapshot(snapshot_id)`` — idempotent: a snapshot that is no longer ``captured`` is
  left as it is; two deliveries at once are serialised by a row lock in
  ``SessionService._process_snapshot`` (the second replaces the first's observations, never
  adds to them). When every snapshot of the session is terminal the decision is handed on.
* ``decide_session(session_id)`` — ``SessionService.finalize_or_abort`` once, under a lock on
  the session row (a second decider finds it decided and does nothing).

The burst frames a worker processes travel through the shared data dir, losslessly
(``keep_frames``: PNG under ``frames/``, listed in the snapshot's ``info``), so a worker
processes exactly the pixels the in-process path would; they are deleted once the snapshot
is processed (or failed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlalchemy import select

from aas_core.capture.base import REAL_CLOCK, CameraError, Clock, capture_burst
from aas_core.config import Settings
from aas_core.db import session_scope
from aas_core.db.models import ClassSession, SessionStatus, Snapshot, SnapshotStatus
from aas_core.db.retry import retry_db, retrying
from aas_core.media.store import ImageStore, discard_on_rollback
from aas_core.redact import redact_text
from aas_core.services.rooms import record_health
from aas_core.services.sessions import AlreadyDecided, SessionService, session_plan

if TYPE_CHECKING:
    from aas_core.capture.factory import CameraConfig

log = logging.getLogger(__name__)

#: Folder of the data dir holding the lossless burst frames of snapshots waiting for a worker.
FRAMES_KIND = "frames"
#: A capture task that arrives early waits for the snapshot's time at most this long (the
#: scheduler sends it at that time; a little early is queue latency the other way round).
MAX_EARLY_WAIT_S = 120.0
#: Who the audit log names for decisions taken by a worker.
ACTOR = "aas-worker"

TERMINAL = (SnapshotStatus.PROCESSED, SnapshotStatus.MISSING, SnapshotStatus.FAILED)


class Next(Protocol):
    """Where a task body hands the next step (``dispatch.InProcess`` or ``dispatch.CeleryDispatch``)."""

    def process(self, snapshot_id: int, *, frames: Sequence[np.ndarray] | None = None, decide: bool = True) -> None: ...

    def decide(self, session_id: int) -> None: ...


@dataclass
class WorkEnv:
    """What the task bodies of one process share: settings, the image store, one
    ``SessionService`` per pipeline profile (the models behind it are loaded once per process,
    on first use, by the backends' process-wide caches)."""

    settings: Settings
    store: ImageStore
    _services: dict[str | None, SessionService] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.settings.database_url

    def service(self, profile: str | None = None) -> SessionService:
        """The session service for a session's profile (the one it was started with: its gallery
        embeddings are of that profile's model)."""
        from aas_core.services.pipelines import pipeline_config
        from aas_core.vision.pipeline import Pipeline

        with self._lock:
            svc = self._services.get(profile)
            if svc is None:
                cfg, notes = pipeline_config(self.settings, profile)
                for n in notes:
                    log.info("%s", n)
                svc = self._services[profile] = SessionService(self.url, self.store, Pipeline(cfg, self.settings.models_dir),
                                                               self.settings)
            return svc


_ENVS: dict[tuple[Any, ...], WorkEnv] = {}
_ENVS_LOCK = threading.Lock()


def env_for(settings: Settings) -> WorkEnv:
    """The process's ``WorkEnv`` for these settings (one per database, data dir and models)."""
    key = (settings.database_url, str(settings.resolved(settings.data_dir)), str(settings.models_dir), settings.profile)
    with _ENVS_LOCK:
        env = _ENVS.get(key)
        if env is None:
            env = _ENVS[key] = WorkEnv(settings, ImageStore(settings.resolved(settings.data_dir)))
        return env


# --- frames through the shared data dir ----------------------------------------------------------

def keep_frames(env: WorkEnv, snapshot_id: int, frames: Sequence[np.ndarray]) -> list[str]:
    """Store a snapshot's burst losslessly (PNG) for the worker that will process it, and list
    the files in the snapshot's ``info`` (the row or nothing: a failed write leaves no file)."""
    rels = [r for r in env.store.save_many(FRAMES_KIND, list(frames), ext=".png") if r]
    with session_scope(env.url) as s:
        for r in rels:
            discard_on_rollback(s, env.store, r)
        snap = s.get(Snapshot, snapshot_id, with_for_update=True)
        if snap is None or snap.status != SnapshotStatus.CAPTURED:
            raise LookupError(f"snapshot {snapshot_id} is not waiting for processing")
        snap.info = {**(snap.info or {}), "frames": rels}
    return rels


def _drop_frames(env: WorkEnv, snapshot_id: int, pending: Sequence[str]) -> None:
    """Forget and delete the kept frames of a snapshot that no longer needs them."""
    if not pending:
        return
    with session_scope(env.url) as s:
        snap = s.get(Snapshot, snapshot_id)
        if snap is not None and snap.info and "frames" in snap.info:
            snap.info = {k: v for k, v in snap.info.items() if k != "frames"}
    for rel in pending:
        env.store.delete(rel)


def _load_frames(env: WorkEnv, pending: Sequence[str]) -> list[np.ndarray] | None:
    try:
        return [env.store.load(p) for p in pending]
    except FileNotFoundError as exc:  # the stored snapshot image is still there: process that
        log.warning("kept burst frames are gone (%s); processing the stored snapshot image instead", exc)
        return None


# --- the task bodies -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _SessionFacts:
    status: SessionStatus
    profile: str | None
    planned: int
    states: dict[int, SnapshotStatus]


def _facts(env: WorkEnv, session_id: int) -> _SessionFacts | None:
    with session_scope(env.url) as s:
        sess = s.get(ClassSession, session_id)
        if sess is None:
            return None
        return _SessionFacts(sess.status, sess.profile, session_plan(sess).snapshots,
                             {x.index: x.status for x in sess.snapshots})


def ready_to_decide(env: WorkEnv, session_id: int) -> bool:
    """Every planned snapshot of a running session is terminal (processed, missing or failed)."""
    f = retry_db(lambda: _facts(env, session_id))
    return (f is not None and f.status == SessionStatus.RUNNING
            and all(f.states.get(k) in TERMINAL for k in range(f.planned)))


def decide_when_ready(env: WorkEnv, session_id: int, then: Next) -> bool:
    if ready_to_decide(env, session_id):
        then.decide(session_id)
        return True
    return False


def process_snapshot(snapshot_id: int, *, env: WorkEnv, then: Next, decide: bool = True,
                     frames: Sequence[np.ndarray] | None = None) -> str:
    """Process a stored snapshot once; returns its status afterwards (``gone`` if deleted).

    ``frames``: the burst in memory (in-process); else the kept frames, else the stored image.
    A pipeline error leaves the snapshot FAILED with its error (terminal, like in-process). Any
    other error (the database unreachable for longer than the retries, an image not readable)
    leaves it ``captured`` and is raised, so the task is retried or redelivered.
    """
    def read() -> tuple[SnapshotStatus, int, str | None, list[str]] | None:
        with session_scope(env.url) as s:
            snap = s.get(Snapshot, snapshot_id)
            if snap is None:
                return None
            return snap.status, snap.session_id, snap.session.profile, list((snap.info or {}).get("frames") or [])

    got = retry_db(read)
    if got is None:
        log.warning("snapshot %s no longer exists (session deleted?); nothing to do", snapshot_id)
        return "gone"
    status, session_id, profile, pending = got
    if status == SnapshotStatus.CAPTURED:
        if frames is None and pending:
            frames = _load_frames(env, pending)
        svc = env.service(profile)
        try:
            retrying(svc.process_snapshot)(snapshot_id, None, frames=frames)
        except Exception:
            after = retry_db(read)
            if after is not None and after[0] == SnapshotStatus.CAPTURED:
                raise  # nothing was recorded: let the task be retried (another worker, later)
            log.warning("snapshot %s of session %s failed; recorded with its error", snapshot_id, session_id,
                        exc_info=True)
        after = retry_db(read)
        status = after[0] if after is not None else SnapshotStatus.FAILED
    else:
        log.info("snapshot %s is already %s: not processed again", snapshot_id, status.value)
    if status != SnapshotStatus.CAPTURED:
        retry_db(lambda: _drop_frames(env, snapshot_id, pending))
    if decide:
        decide_when_ready(env, session_id, then)
    return status.value


def decide_session(session_id: int, *, env: WorkEnv, actor: str = ACTOR) -> dict[str, Any] | None:
    """Decide a running session whose snapshots are all terminal; returns the outcome's JSON
    (``{"session_id": ..., "aborted": true}`` when nothing was usable: "no data"), or None when
    there is nothing to do (not ready, or decided already)."""
    if not ready_to_decide(env, session_id):
        return None
    f = _facts(env, session_id)
    svc = env.service(f.profile if f else None)
    try:
        outcome = retry_db(lambda: svc.finalize_or_abort(session_id, actor=actor, if_running=True))
    except AlreadyDecided:
        return None
    return outcome.as_json() if outcome is not None else {"session_id": session_id, "aborted": True}


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def camera_config(settings: Settings, name: str) -> CameraConfig:
    """The camera of a session, by name: the one resolver of rooms as data (the camera row
    merged with its secrets, else a camera defined only in the environment)."""
    from aas_core.services.rooms import camera_config as resolve

    return resolve(settings, settings.database_url, name)


def capture_snapshot(session_id: int, index: int, *, env: WorkEnv, then: Next,
                     clock: Clock = REAL_CLOCK) -> int | None:
    """Take snapshot ``index`` of a running camera session now (at its time); returns the stored
    snapshot's id, or None when it was recorded missing or there was nothing to take.

    Late rule as ``capture.runner``: a capture that runs after the next snapshot is due (or,
    for the last, after the session's end) would be evidence about the wrong part of the
    lecture: it is recorded missing with the reason instead.
    """
    from aas_core.capture.factory import make_camera

    def read() -> tuple[Any, ...] | None:
        with session_scope(env.url) as s:
            sess = s.get(ClassSession, session_id)
            if sess is None:
                return None
            plan = session_plan(sess)
            old = s.scalar(select(Snapshot).where(Snapshot.session_id == session_id, Snapshot.index == index))
            return (sess.status, sess.profile, sess.camera_name or plan.camera, sess.started_at, plan,
                    (old.id, old.status) if old is not None else None)

    got = retry_db(read)
    if got is None or got[0] != SessionStatus.RUNNING:
        log.info("session %s is gone or no longer running: snapshot %d not taken", session_id, index + 1)
        return None
    _, profile, camera_name, started_at, plan, old = got
    if not 0 <= index < plan.snapshots:
        raise ValueError(f"session {session_id} plans {plan.snapshots} snapshots; there is no snapshot {index + 1}")
    svc = env.service(profile)  # no model is loaded by capturing: the pipeline is lazy
    if old is not None:  # a redelivered capture: never take it twice
        snap_id, status = old
        if status == SnapshotStatus.CAPTURED:
            then.process(snap_id)  # stored, perhaps never handed on: hand it on (processing is idempotent)
        else:
            decide_when_ready(env, session_id, then)
        return snap_id if status != SnapshotStatus.MISSING else None

    def missing(error: str, camera_fault: bool = False) -> None:
        retrying(svc.record_missing)(session_id, index, redact_text(error)[:2000], camera_name)
        if camera_fault and camera_name:
            record_health(env.url, camera_name, ok=False, error=redact_text(error)[:2000])
        decide_when_ready(env, session_id, then)

    offsets = plan.offsets_s or []
    if index < len(offsets):
        start = started_at.replace(tzinfo=UTC)
        due = start + timedelta(seconds=offsets[index])
        if index + 1 < len(offsets):
            latest: datetime | None = start + timedelta(seconds=offsets[index + 1])
        else:
            latest = start + timedelta(seconds=plan.plan.session_length_s) if plan.plan else None
        early = (due - clock.now()).total_seconds()
        if early > 0:
            clock.wait(min(early, MAX_EARLY_WAIT_S))
        now = clock.now()
        if latest is not None and now > latest:
            missing(f"not taken: its capture ran {(now - due).total_seconds():.0f} s after its time and the "
                    "next snapshot is already due (no capture worker free in time?)")
            return None
    if not camera_name:
        missing("not taken: the session has no camera")
        return None
    try:
        camera = make_camera(camera_config(env.settings, camera_name))
    except (LookupError, ValueError) as exc:
        missing(f"not taken: {exc}")
        return None
    try:
        shot = capture_burst(camera, frames=plan.burst_frames, interval_s=plan.burst_interval_s,
                             settle_s=env.settings.light_settle_s, deadline_s=env.settings.capture_window_s,
                             clock=clock)
    except CameraError as exc:
        missing(str(exc), camera_fault=True)
        return None
    finally:
        try:
            camera.close()
        except Exception:  # noqa: BLE001 - closing is best effort; the snapshot is what matters
            log.warning("closing camera %s failed", camera_name, exc_info=True)
    for problem in [*shot.frame_errors, *([f"light: {shot.light_error}"] if shot.light_error else [])]:
        log.warning("session %s snapshot %d: %s", session_id, index + 1, problem)
    frames = list(shot.frames)
    snap_id = retrying(svc.store_snapshot)(session_id, index, frames[0], camera=camera_name,
                                           light_used=shot.light_used, captured_at=_naive_utc(shot.captured_at),
                                           scheduled_offset_s=offsets[index] if index < len(offsets) else None)
    record_health(env.url, camera_name, ok=True, at=_naive_utc(shot.captured_at))
    then.process(snap_id, frames=frames)
    return snap_id
