"""The scheduler: sessions open themselves at each timetable meeting and capture their plan.

``Scheduler(url, settings, work, clock).tick(now)`` does, each time it is called:

1. **Heartbeat** — notes this instance's tick; the latest tick of any instance before it tells
   how long no scheduler was running.
2. **Meetings** — every meeting that has started since then: if it started at most
   ``grace_s`` ago, the session is opened (``sessions.open_session``: the course's capture
   plan fitted to the meeting, a stored seed, the camera of the meeting's room, else the
   course's camera); the unique index on (course, meeting start) makes that happen once
   whoever ticks (two schedulers, a restart). A meeting that started earlier, while no
   scheduler ran, is recorded in ``missed_meetings`` and never turned into a session.
3. **Snapshots** — for each scheduled session still running, every snapshot whose time has
   come is handed to ``work.capture(session_id, index)`` once (``capture_dispatches``' primary
   key); one whose window passed before any scheduler could hand it over (the scheduler was
   down) is recorded missing with that reason. A hand-over that produced nothing within
   ``redispatch_after_s`` (or, for in-process work, one made by a scheduler that has since
   stopped) is handed over again: ``work.capture`` is idempotent.

``work`` has one method, ``capture(session_id, index)``: take the snapshot if its time has
come and not passed (else record it missing with the reason), store it, process it, and when
every snapshot of the session is terminal decide attendance (``finalize_or_abort``: no usable
snapshot = "no data", never a class of absentees). Called for a snapshot that is already
stored, it processes it if that was not done and runs the decision check: that is how the
scheduler asks for a decision after recording the last snapshots missing itself.
:class:`LocalWork` does this in this process (threads); a Celery-backed work object sends
it to ``aas worker`` processes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from aas_core.capture.base import REAL_CLOCK, CameraError, Clock, capture_burst
from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import (
    CaptureDispatch,
    ClassSession,
    Course,
    MissedMeeting,
    SchedulerInstance,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
)
from aas_core.db.retry import retrying
from aas_core.domain.course_config import camera_session_plan, draw_seed
from aas_core.domain.timetable import Meeting, fit_plan
from aas_core.redact import redact_text
from aas_core.services import rooms
from aas_core.services.camera_session import note_missing, process_captured, store_captured
from aas_core.services.sessions import SessionService, open_session, record_missing, session_plan
from aas_core.services.timetable import meetings_between

log = logging.getLogger(__name__)

__all__ = ["LocalWork", "Scheduler", "TickReport", "Work", "snapshot_window"]

TERMINAL = (SnapshotStatus.PROCESSED, SnapshotStatus.MISSING, SnapshotStatus.FAILED)
#: How far back a scheduler that was away looks for meetings it slept through.
MAX_LOOKBACK = timedelta(days=31)


class Work(Protocol):
    """Takes one snapshot of a scheduled session (see the module docstring)."""

    def capture(self, session_id: int, index: int) -> None: ...


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _hm(t: datetime) -> str:
    return f"{_aware(t):%Y-%m-%d %H:%M:%S} UTC"


def snapshot_window(sess: ClassSession, index: int) -> tuple[datetime, datetime | None]:
    """When snapshot ``index`` of ``sess`` is due and the latest it may still be taken (the
    next one's time, or the end of the session for the last), aware UTC. Taken later, an
    image would be evidence about the wrong part of the lesson (as in ``capture.runner``)."""
    plan = session_plan(sess)
    offsets = plan.offsets_s or [0.0] * plan.snapshots
    t0 = _aware(sess.started_at)
    due = t0 + timedelta(seconds=offsets[index])
    if index + 1 < len(offsets):
        return due, t0 + timedelta(seconds=offsets[index + 1])
    if plan.plan is not None:
        return due, t0 + timedelta(seconds=plan.plan.session_length_s)
    return due, None


@dataclass
class TickReport:
    """What one tick did (logged by ``aas scheduler``, printed by ``--once --json``)."""

    at: datetime
    opened: list[dict[str, Any]] = field(default_factory=list)
    missed: list[dict[str, Any]] = field(default_factory=list)
    dispatched: list[dict[str, Any]] = field(default_factory=list)
    recorded_missing: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat().replace("+00:00", "Z"), "opened": self.opened, "missed": self.missed,
                "dispatched": self.dispatched, "recorded_missing": self.recorded_missing}

    @property
    def idle(self) -> bool:
        return not (self.opened or self.missed or self.dispatched or self.recorded_missing)


class Scheduler:
    """Opens the sessions of timetable meetings and hands their snapshots to ``work``.

    ``grace_s``: how late after a meeting's start a session is still opened (a scheduler that
    starts a few minutes into a lecture still takes it; later ones are missed).
    ``redispatch_after_s``: a hand-over older than this that produced nothing is repeated.
    """

    def __init__(self, url: str, settings: Settings, work: Work, clock: Clock = REAL_CLOCK, *,
                 grace_s: float = 300.0, redispatch_after_s: float = 900.0, instance: str | None = None,
                 actor: str = "scheduler") -> None:
        self.url = url
        self.settings = settings
        self.work = work
        self.clock = clock
        self.grace = timedelta(seconds=grace_s)
        self.redispatch_after = timedelta(seconds=redispatch_after_s)
        self.instance = instance or f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.actor = actor
        # In-process work dies with its scheduler: a hand-over by another (stopped) instance is void.
        self.in_process = bool(getattr(work, "in_process", False))

    # --- one tick ------------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> TickReport:
        now = _aware(now or self.clock.now())
        report = TickReport(now)
        last = retrying(self._heartbeat)(now)
        self._meetings(now, last, report)
        self._snapshots(now, report)
        return report

    def _heartbeat(self, now: datetime) -> datetime | None:
        """Note this tick; returns the latest tick of any instance before it (None: the first ever)."""
        with session_scope(self.url) as s:
            last = s.scalar(select(func.max(SchedulerInstance.last_tick_at)))
            me = s.get(SchedulerInstance, self.instance)
            if me is None:
                s.add(SchedulerInstance(instance=self.instance, host=socket.gethostname()[:200], pid=os.getpid(),
                                        started_at=_naive(now), last_tick_at=_naive(now)))
            else:
                me.last_tick_at = max(me.last_tick_at or _naive(now), _naive(now))
        return _aware(last) if last is not None else None

    def _meetings(self, now: datetime, last: datetime | None, report: TickReport) -> None:
        since = max((last or now) - self.grace, now - MAX_LOOKBACK)
        meetings = meetings_between(self.url, since, now + timedelta(microseconds=1))
        if not meetings:
            return
        with session_scope(self.url) as s:
            ids: dict[str, int] = {code: cid for code, cid in s.execute(select(Course.code, Course.id))}
            lo = _naive(since)
            done = {(cid, t) for cid, t in s.execute(select(ClassSession.course_id, ClassSession.meeting_start)
                                                     .where(ClassSession.meeting_start >= lo))}
            done |= {(cid, t) for cid, t in s.execute(select(MissedMeeting.course_id, MissedMeeting.meeting_start)
                                                      .where(MissedMeeting.meeting_start >= lo))}
        for m in meetings:
            cid = ids.get(m.course)
            if cid is None or (cid, _naive(m.start)) in done:
                continue
            if now - m.start <= self.grace:
                sid = self._open(m)
                if sid is not None:
                    report.opened.append({**m.as_json(), "session_id": sid})
            else:
                reason = (f"no scheduler was running at its start ({_hm(m.start)})"
                          + (f"; the last tick before was at {_hm(last)}" if last else "")
                          + f"; back at {_hm(now)}")
                if self._missed(cid, m, reason):
                    report.missed.append({**m.as_json(), "reason": reason})

    def _open(self, m: Meeting) -> int | None:
        """Open the meeting's session; None when another scheduler already did."""
        with session_scope(self.url) as s:
            course = repo.get_course(s, m.course)
            plan, course_camera = course.config.plan, course.config.camera
        fitted = fit_plan(plan, m)
        if fitted.session_length_s > (m.end - m.start).total_seconds():
            log.warning("%s: the capture plan (%.0f min) is longer than the meeting and cannot be shortened to it",
                        m.key, plan.session_length_s / 60)
        camera = (rooms.room_camera_name(self.url, m.room) if m.room else None) or course_camera
        seed = draw_seed()
        session_plan_ = camera_session_plan(fitted, seed, camera)
        try:
            sid = open_session(self.url, m.course, plan=session_plan_, seed=seed, camera_name=camera, actor=self.actor,
                               meeting_start=_naive(m.start), started_at=_naive(m.start))
        except IntegrityError:
            return None  # the unique (course, meeting start): someone else opened it
        log.info("%s: session %s opened (room %s, camera %s)", m.key, sid, m.room or "-", camera or "none")
        return sid

    def _missed(self, course_id: int, m: Meeting, reason: str) -> bool:
        try:
            with session_scope(self.url) as s:
                s.add(MissedMeeting(course_id=course_id, meeting_start=_naive(m.start), meeting_end=_naive(m.end),
                                    room=m.room, reason=reason[:300]))
        except IntegrityError:
            return False
        log.warning("%s: missed (%s)", m.key, reason)
        return True

    def _snapshots(self, now: datetime, report: TickReport) -> None:
        with session_scope(self.url) as s:
            running = list(s.scalars(select(ClassSession.id).where(ClassSession.status == SessionStatus.RUNNING,
                                                                   ClassSession.meeting_start.is_not(None))))
        for sid in running:
            try:
                self._session_snapshots(sid, now, report)
            except Exception:  # noqa: BLE001 - one broken session must not stop the others
                log.exception("scheduling the snapshots of session %s failed", sid)

    def _session_snapshots(self, sid: int, now: datetime, report: TickReport) -> None:
        with session_scope(self.url) as s:
            sess = s.get(ClassSession, sid)
            if sess is None or sess.status != SessionStatus.RUNNING:
                return
            n = session_plan(sess).snapshots
            windows = [snapshot_window(sess, k) for k in range(n)]
            status = {x.index: x.status for x in sess.snapshots}
            dispatched = {d.index: (d.dispatched_at, d.instance) for d in
                          s.scalars(select(CaptureDispatch).where(CaptureDispatch.session_id == sid))}
            camera = sess.camera_name
        for k, (due, latest) in enumerate(windows):
            if due > now:
                break
            if status.get(k) in TERMINAL:
                continue
            if k not in status and k not in dispatched and latest is not None and now > latest:
                reason = (f"not taken: it was due at {_hm(due)} and its time had passed (the next snapshot or the "
                          f"end of the session at {_hm(latest)}) when a scheduler was running again at {_hm(now)}")
                try:
                    wrote = record_missing(self.url, sid, k, reason, camera)
                except IntegrityError:  # stored meanwhile by a late capture
                    wrote = False
                if wrote:
                    status[k] = SnapshotStatus.MISSING
                    report.recorded_missing.append({"session_id": sid, "index": k, "reason": reason})
                    continue
            if self._hand_over(sid, k, now, dispatched.get(k)):
                report.dispatched.append({"session_id": sid, "index": k, "due": due.isoformat()})
        if all(status.get(k) in TERMINAL for k in range(n)):
            # Every snapshot is settled but the session is still open: the work that settled the
            # last one did not decide (or the scheduler settled it). Ask for the decision.
            if self._hand_over(sid, n - 1, now, dispatched.get(n - 1)):
                report.dispatched.append({"session_id": sid, "index": n - 1, "decide": True})

    def _hand_over(self, sid: int, index: int, now: datetime, previous: tuple[datetime, str] | None) -> bool:
        """``work.capture(sid, index)`` unless another hand-over of it is still live; True if called."""
        try:
            with session_scope(self.url) as s:
                if previous is None:
                    s.add(CaptureDispatch(session_id=sid, index=index, dispatched_at=_naive(now),
                                          instance=self.instance, attempts=1))
                else:
                    at, instance = previous
                    stale = (now - _aware(at) > self.redispatch_after
                             or (self.in_process and instance != self.instance))
                    if not stale:
                        return False
                    # Compare-and-set on the previous hand-over: of two schedulers, one wins.
                    won = s.execute(update(CaptureDispatch).where(
                        CaptureDispatch.session_id == sid, CaptureDispatch.index == index,
                        CaptureDispatch.dispatched_at == at, CaptureDispatch.instance == instance,
                    ).values(dispatched_at=_naive(now), instance=self.instance,
                             attempts=CaptureDispatch.attempts + 1)).rowcount
                    if not won:
                        return False
        except IntegrityError:
            return False  # another scheduler handed it over first
        try:
            self.work.capture(sid, index)
        except Exception:  # noqa: BLE001 - the hand-over stays recorded; it is repeated when stale
            log.exception("handing snapshot %d of session %s to the work failed", index + 1, sid)
        return True

    # --- the long-running loop ------------------------------------------------------------------------
    def run(self, *, interval_s: float = 10.0, stop: threading.Event | None = None,
            on_tick: Callable[[TickReport], None] | None = None) -> None:
        """Tick every ``interval_s`` until ``stop`` is set (``aas scheduler``). A failing tick (the
        database away) is logged and the next one tried: the scheduler itself never gives up."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                report = self.tick()
                if on_tick is not None:
                    on_tick(report)
            except Exception:  # noqa: BLE001 - see the docstring
                log.exception("scheduler tick failed; trying again in %.0f s", interval_s)
            if self.clock.wait(interval_s, stop):
                break


class LocalWork:
    """The work of a scheduled snapshot, in this process: capture, store, process, decide.

    ``threads`` > 0: each ``capture`` runs in a pool thread (the scheduler's tick does not wait
    for a burst); pipeline runs are serialised (one CPU-bound model at a time) and so are the
    decisions. ``threads`` = 0: ``capture`` returns when the work is done (tests, ``--once``).
    """

    in_process = True

    def __init__(self, svc: SessionService, settings: Settings, *, clock: Clock = REAL_CLOCK, threads: int = 0,
                 actor: str = "scheduler") -> None:
        self.svc = svc
        self.settings = settings
        self.clock = clock
        self.actor = actor
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="aas-capture") if threads > 0 else None
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()  # the futures set
        self._process_lock = threading.Lock()
        self._decide_lock = threading.Lock()
        self._prepared: set[int] = set()  # sessions whose course's samples have this model's embeddings

    # --- Work ---------------------------------------------------------------------------------------------
    def capture(self, session_id: int, index: int) -> None:
        if self._pool is None:
            self._capture(session_id, index)
            return
        fut = self._pool.submit(self._capture, session_id, index)
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._forget)

    def _forget(self, fut: Future[None]) -> None:
        with self._lock:
            self._futures.discard(fut)

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for every capture in flight; True when none is left."""
        with self._lock:
            pending = set(self._futures)
        done, not_done = wait(pending, timeout=timeout_s)
        return not not_done

    def close(self, timeout_s: float | None = None) -> None:
        self.drain(timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # --- one snapshot ---------------------------------------------------------------------------------------
    def _capture(self, session_id: int, index: int) -> None:
        try:
            self._take(session_id, index)
        except Exception:  # noqa: BLE001 - a pool thread has nobody to raise to; the scheduler re-dispatches
            log.exception("snapshot %d of session %s failed", index + 1, session_id)
        try:
            self.decide_if_complete(session_id)
        except Exception:  # noqa: BLE001 - as above
            log.exception("deciding session %s failed", session_id)

    def _take(self, session_id: int, index: int) -> None:
        with session_scope(self.svc.url) as s:
            sess = s.get(ClassSession, session_id)
            if sess is None or sess.status != SessionStatus.RUNNING:
                return
            plan = session_plan(sess)
            if not 0 <= index < plan.snapshots:
                raise ValueError(f"session {session_id} has no snapshot {index + 1}")
            due, latest = snapshot_window(sess, index)
            offset = plan.offsets_s[index] if plan.offsets_s else None
            row = s.scalar(select(Snapshot).where(Snapshot.session_id == session_id, Snapshot.index == index))
            stored = (row.id, row.status) if row is not None else None
            camera_name, course = sess.camera_name, sess.course.code
        if stored is not None:
            if stored[1] == SnapshotStatus.CAPTURED:  # stored before a crash, never processed
                self._process(session_id, course, stored[0], None)
            return
        now = _aware(self.clock.now())
        if now < due:
            self.clock.wait((due - now).total_seconds())
            now = _aware(self.clock.now())
        if latest is not None and now > latest:
            note_missing(self.svc, session_id, index,
                         f"not taken: it was due at {_hm(due)}; when the capture could run ({_hm(now)}) the next "
                         f"snapshot or the end of the session ({_hm(latest)}) had come", camera_fault=False)
            return
        if not camera_name:
            note_missing(self.svc, session_id, index, "no camera: the meeting's room has none and the course names "
                         "none (Rooms, or Courses → Camera)", camera_fault=False)
            return
        try:
            cfg = rooms.camera_config(self.settings, self.svc.url, camera_name)
        except (LookupError, ValueError) as exc:
            note_missing(self.svc, session_id, index, str(exc), camera=camera_name)
            return
        from aas_core.capture.factory import make_camera

        camera = make_camera(cfg)
        try:
            shot = capture_burst(camera, frames=plan.burst_frames, interval_s=plan.burst_interval_s,
                                 settle_s=self.settings.light_settle_s, deadline_s=self.settings.capture_window_s,
                                 clock=self.clock)
        except CameraError as exc:
            note_missing(self.svc, session_id, index, str(exc), camera=camera_name)
            return
        except Exception as exc:  # noqa: BLE001 - a backend bug: the snapshot is missing, the session goes on
            log.exception("capturing snapshot %d of session %s failed", index + 1, session_id)
            note_missing(self.svc, session_id, index, f"unexpected error: {exc.__class__.__name__}: {exc}",
                         camera=camera_name)
            return
        finally:
            try:
                camera.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("closing camera %s failed", camera_name, exc_info=True)
        snap_id = store_captured(self.svc, session_id, index, list(shot.frames), captured_at=shot.captured_at,
                                 camera=camera_name, light_used=shot.light_used, offset_s=offset)
        if shot.light_error:
            rooms.record_health(self.svc.url, camera_name, ok=False, error=f"light: {shot.light_error}")
        self._process(session_id, course, snap_id, list(shot.frames))

    def _process(self, session_id: int, course: str, snap_id: int, frames: list[Any] | None) -> None:
        from aas_core.services.enrollment import ensure_embeddings

        with self._process_lock:
            if session_id not in self._prepared:
                # As SessionService.start does: samples embedded with this pipeline's model first.
                ensure_embeddings(self.svc.url, course, self.svc.pipeline, self.svc.store, self.settings)
                with session_scope(self.svc.url) as s:  # the profile that processes it (the scheduler has none)
                    sess = s.get(ClassSession, session_id)
                    if sess is not None and sess.profile is None:
                        sess.profile = self.svc.pipeline.config.profile
                self._prepared.add(session_id)
            try:
                process_captured(self.svc, snap_id, frames)
            except Exception as exc:  # noqa: BLE001 - stored as FAILED by the session service; the session goes on
                log.warning("processing snapshot %s failed: %s", snap_id, redact_text(str(exc)))

    def decide_if_complete(self, session_id: int) -> bool:
        """Decide attendance once every snapshot is settled; True if this call decided it."""
        with self._decide_lock:
            with session_scope(self.svc.url) as s:
                sess = s.get(ClassSession, session_id)
                if sess is None or sess.status != SessionStatus.RUNNING:
                    return False
                n = session_plan(sess).snapshots
                settled = {x.index for x in sess.snapshots if x.status in TERMINAL}
            if not all(k in settled for k in range(n)):
                return False
            outcome = retrying(self.svc.finalize_or_abort)(session_id, actor=self.actor)
            log.info("session %s decided: %s", session_id,
                     "no data (no usable snapshot)" if outcome is None else f"{len(outcome.statuses)} students")
            return True

