"""Who runs the next step: this process (no broker) or the ``aas worker`` processes (Celery).

``dispatcher(settings)`` is the one switch: without ``AAS_BROKER_URL`` the task bodies of
``tasks.work`` run here, one after the other (``InProcess``), so ``make run`` alone still runs
everything on one machine; with it they are sent to the broker's queues (``CeleryDispatch``).
Both have the same methods, ``capture(session_id, index)`` (what the scheduler calls at a
snapshot's time), ``process(snapshot_id)`` and ``decide(session_id)``.

``run_from_images`` is ``SessionService.run_from_images`` with the processing done by the
workers: ``aas session run`` with a broker prints the same JSON as without.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aas_core.capture.base import REAL_CLOCK, Clock
from aas_core.config import Settings
from aas_core.db import session_scope
from aas_core.db.models import ClassSession, SnapshotStatus
from aas_core.db.retry import retry_db, retrying
from aas_core.domain.course_config import SessionPlan
from aas_core.redact import redact_text, redact_url
from aas_core.services.sessions import NoSnapshots, SessionFailed, SessionOutcome, SessionService, one_line
from aas_core.tasks import work

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached (or refused a message); the message says what was kept."""


class WorkersUnavailable(RuntimeError):
    """No worker processed the queued snapshots in time; the message says how to finish."""


class InProcess:
    """Run the task bodies here and now (no broker)."""

    remote = False

    def __init__(self, env: work.WorkEnv, clock: Clock = REAL_CLOCK) -> None:
        self.env = env
        self.clock = clock

    def capture(self, session_id: int, index: int) -> None:
        work.capture_snapshot(session_id, index, env=self.env, then=self, clock=self.clock)

    def process(self, snapshot_id: int, *, frames: Sequence[np.ndarray] | None = None, decide: bool = True) -> None:
        work.process_snapshot(snapshot_id, env=self.env, then=self, decide=decide, frames=frames)

    def decide(self, session_id: int) -> None:
        work.decide_session(session_id, env=self.env)


class CeleryDispatch:
    """Send the steps to the broker's queues (``tasks.app``): captures to ``aas.capture``,
    processing and decisions to ``aas.process``."""

    remote = True

    def __init__(self, env: work.WorkEnv, app: Celery) -> None:
        self.env = env
        self.app = app

    def capture(self, session_id: int, index: int) -> None:
        from aas_core.tasks.app import CAPTURE_TASK

        self._send(CAPTURE_TASK, [session_id, index])

    def process(self, snapshot_id: int, *, frames: Sequence[np.ndarray] | None = None, decide: bool = True) -> None:
        from aas_core.tasks.app import PROCESS_TASK

        if frames is not None:  # the worker reads them from the shared data dir, losslessly
            retry_db(lambda: work.keep_frames(self.env, snapshot_id, frames))
        self._send(PROCESS_TASK, [snapshot_id], {"decide": decide})

    def decide(self, session_id: int) -> None:
        from aas_core.tasks.app import DECIDE_TASK

        self._send(DECIDE_TASK, [session_id])

    def _send(self, name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> None:
        from kombu.exceptions import OperationalError

        try:
            self.app.send_task(name, args=args, kwargs=kwargs or {})
        except OperationalError as exc:
            raise BrokerUnavailable(f"the broker {redact_url(str(self.app.conf.broker_url))} is not reachable: "
                                    f"{redact_text(str(exc))}") from exc


Dispatcher = InProcess | CeleryDispatch


def dispatcher(settings: Settings) -> Dispatcher:
    """``CeleryDispatch`` when a broker is configured, else ``InProcess``."""
    env = work.env_for(settings)
    if settings.broker_url:
        from aas_core.tasks.app import celery_app

        return CeleryDispatch(env, celery_app(settings))
    return InProcess(env)


def check_broker(app: Celery, timeout_s: float = 5.0) -> None:
    """Connect to the broker once (``BrokerUnavailable`` with the reason when it does not answer)."""
    url = redact_url(str(app.conf.broker_url))
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - every transport error means the same here
        raise BrokerUnavailable(f"the broker {url} is not reachable: {redact_text(one_line(exc))}") from None


def _states(url: str, session_id: int) -> dict[int, SnapshotStatus]:
    with session_scope(url) as s:
        sess = s.get(ClassSession, session_id)
        return {x.index: x.status for x in sess.snapshots} if sess else {}


def run_from_images(svc: SessionService, send: CeleryDispatch, course_code: str,
                    images: Sequence[np.ndarray | Sequence[np.ndarray]], *, actor: str = "system",
                    camera: str = "upload", timeout_s: float = 300.0, poll_s: float = 0.25,
                    sleep: Callable[[float], None] = time.sleep) -> SessionOutcome:
    """``SessionService.run_from_images`` with the processing done by ``aas worker`` processes.

    The broker is asked first (unreachable: ``BrokerUnavailable``, no session opened). Then the
    session is opened, every snapshot stored (image, row, and the lossless burst for the worker)
    before any is sent, so a broker lost midway loses nothing: the error names the session and
    ``aas session resume`` processes what was stored. The workers only process; this process
    decides, once every snapshot is terminal (``SessionService.finalize_or_abort``, the same
    call as in-process, hence the same outcome). ``WorkersUnavailable`` when no snapshot was
    finished for ``timeout_s`` (no worker running): the session stays open and the message says
    how to finish it.
    """
    if not images:
        raise ValueError("a session needs at least one snapshot")
    bursts = [[img] if isinstance(img, np.ndarray) else list(img) for img in images]
    if not all(bursts):
        raise ValueError(f"snapshot {next(k for k, b in enumerate(bursts, 1) if not b)} has no frame")
    check_broker(send.app)
    sid = svc.start(course_code, camera_name=camera, plan=SessionPlan.for_images(len(bursts), camera), actor=actor)
    step = "storing snapshot 1"
    try:
        ids = []
        for k, frames in enumerate(bursts):
            step = f"storing snapshot {k + 1}"
            ids.append(retrying(svc.store_snapshot)(sid, k, frames[0], camera=camera))
            retry_db(lambda k=k, frames=frames: work.keep_frames(send.env, ids[k], frames))
    except Exception as exc:
        raise svc._close_after_failure(sid, actor, exc, step) from exc
    from aas_core.tasks.app import PROCESS_TASK

    for k, snap_id in enumerate(ids):
        try:
            send._send(PROCESS_TASK, [snap_id], {"decide": False})
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"{exc}; session {sid} stays open with its {len(ids)} snapshots stored "
                                    f"({k} sent to the workers): `aas session resume {sid}` processes them "
                                    "here") from None
    n, last, done_before = len(ids), time.monotonic(), -1
    while True:
        states = retry_db(lambda: _states(svc.url, sid))
        done = sum(states.get(k) in work.TERMINAL for k in range(n))
        if done == n:
            break
        if done != done_before:
            done_before, last = done, time.monotonic()
        elif time.monotonic() - last > timeout_s:
            raise WorkersUnavailable(
                f"session {sid}: no snapshot was processed for {timeout_s:g} s ({n - done} of {n} still queued on "
                f"{redact_url(str(send.app.conf.broker_url))}): is an `aas worker` consuming the process queue "
                f"running? The session stays open; its snapshots are processed once a worker runs, then "
                f"`aas session resume {sid}` decides it")
        sleep(poll_s)
    try:
        outcome = retry_db(lambda: svc.finalize_or_abort(sid, actor=actor))
    except Exception as exc:
        raise svc._close_after_failure(sid, actor, exc, "finalizing") from exc
    if outcome is None:
        raise NoSnapshots(f"session {sid}: no snapshot could be processed; the session was closed without "
                          "attendance", sid)
    return outcome


__all__ = ["BrokerUnavailable", "CeleryDispatch", "Dispatcher", "InProcess", "SessionFailed", "WorkersUnavailable",
           "check_broker", "dispatcher", "run_from_images"]
