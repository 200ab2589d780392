"""Run a session's capture plan in a background thread.

The runner only *takes* snapshots; what happens to them is the caller's business through
three callbacks, all called in the runner thread, in snapshot order:

* ``on_snapshot(index, frames, captured_at, camera_name, light_used)`` -- ``frames``: the
  snapshot's burst (a list of 1..``burst_frames`` images, in capture order; a frame that
  failed is left out); store and commit at once (so a crash later loses nothing), then run
  the pipeline;
* ``on_missing(index, error_message)`` -- record that snapshot ``index`` has no image
  (the attendance rules then skip it instead of marking everyone absent);
* ``on_done()`` -- every scheduled snapshot was handled (not called after ``stop()``).

An exception raised by a callback is logged and listed in ``status.errors``; the runner
goes on with the next snapshot (one bad database write must not end the session's capture).

Resuming: the schedule is relative to ``session_started_at``. After a restart, call
``start(skip_indices={...already stored...})`` with the same offsets (same plan + seed): the
runner waits for the remaining snapshots, and one whose time has passed is still taken
(late) as long as the next one is not yet due (or, for the last, the session has not
ended); otherwise it is reported to ``on_missing``, because an image taken much later than
planned would be evidence about the wrong part of the lesson.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from aas_core.domain.plans import CapturePlan
from aas_core.redact import redact_text

from .base import REAL_CLOCK, Camera, CameraError, CaptureCancelled, Clock, camera_name, capture_burst

log = logging.getLogger(__name__)

__all__ = ["RunnerStatus", "SessionRunner", "OnSnapshot", "OnMissing", "OnDone"]

OnSnapshot = Callable[[int, list[np.ndarray], datetime, str, bool], Any]
OnMissing = Callable[[int, str], Any]
OnDone = Callable[[], Any]

RunnerState = Literal["idle", "waiting", "capturing", "done", "stopped"]


@dataclass(frozen=True)
class RunnerStatus:
    """What the UI shows; a consistent copy, safe to read from any thread."""

    state: RunnerState = "idle"
    total: int = 0
    next_index: int | None = None
    next_due_at: datetime | None = None
    taken: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()
    skipped: tuple[int, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "stopped")


class SessionRunner:
    """Executes ``offsets`` (seconds after ``session_started_at``) against ``camera``.

    ``settle_s``: wait after the light goes on. ``capture_window_s`` / ``attempts`` /
    ``backoff_s``: retry budget per snapshot (see ``grab_with_retry``; a burst's frames share
    the window). ``burst_frames`` / ``burst_interval_s``: frames per snapshot, taken with the
    light on throughout (``capture_burst``). ``clock``: inject a
    fake clock in tests so a 50-minute plan runs in milliseconds. The runner does not close
    the camera (the caller owns it).
    """

    def __init__(
        self,
        camera: Camera,
        offsets: Sequence[float],
        *,
        on_snapshot: OnSnapshot,
        on_missing: OnMissing | None = None,
        on_done: OnDone | None = None,
        session_started_at: datetime | None = None,
        session_end_s: float | None = None,
        settle_s: float = 1.0,
        capture_window_s: float = 60.0,
        attempts: int = 3,
        backoff_s: float = 1.0,
        use_light: bool = True,
        clock: Clock = REAL_CLOCK,
        camera_label: str | None = None,
        burst_frames: int = 1,
        burst_interval_s: float = 0.4,
    ) -> None:
        if list(offsets) != sorted(offsets):
            raise ValueError("offsets must be in time order")
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        if burst_frames < 1:
            raise ValueError("burst_frames must be >= 1")
        self.camera = camera
        self.offsets = [float(o) for o in offsets]
        self.on_snapshot = on_snapshot
        self.on_missing = on_missing
        self.on_done = on_done
        self.session_started_at = session_started_at
        self.session_end_s = session_end_s
        self.settle_s = settle_s
        self.capture_window_s = capture_window_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.use_light = use_light
        self.burst_frames = int(burst_frames)
        self.burst_interval_s = float(burst_interval_s)
        self.clock = clock
        self.camera_label = camera_label or camera_name(camera)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status = RunnerStatus(total=len(self.offsets))

    @classmethod
    def from_plan(cls, camera: Camera, plan: CapturePlan, seed: int, **kwargs: Any) -> SessionRunner:
        """Runner for ``plan.schedule(seed)``; the session end bounds late captures."""
        kwargs.setdefault("session_end_s", plan.session_length_s)
        return cls(camera, plan.schedule(seed), **kwargs)

    # --- control --------------------------------------------------------------------------
    def start(self, skip_indices: Iterable[int] = ()) -> None:
        """Start the background thread; ``skip_indices``: snapshots already stored."""
        if self.running:
            raise RuntimeError("runner is already running")
        skip = sorted({int(i) for i in skip_indices})
        bad = [i for i in skip if not 0 <= i < len(self.offsets)]
        if bad:
            raise ValueError(f"skip_indices {bad} out of range 0..{len(self.offsets) - 1}")
        self._stop.clear()
        with self._lock:
            self._status = RunnerStatus(state="waiting", total=len(self.offsets), skipped=tuple(skip))
        self._thread = threading.Thread(target=self._run, args=(set(skip),), name="aas-session-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = 10.0) -> bool:
        """Cancel: wakes the wait at once; a grab in progress is abandoned (``grab_within``).

        The light is still switched off (``capture_burst``'s ``finally``; that request is
        bounded by the light's own timeout). Returns whether the thread has ended within
        ``timeout_s``.
        """
        self._stop.set()
        return self.join(timeout_s)

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread to end; True if it has (or never started)."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def status(self) -> RunnerStatus:
        with self._lock:
            return self._status

    # --- internals -----------------------------------------------------------------------
    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    def _append(self, name: str, value: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **{name: getattr(self._status, name) + (value,)})

    def _error(self, message: str) -> None:
        message = redact_text(message)  # shown on the Live page: no URL credential may reach it
        log.warning("%s: %s", self.camera_label, message)
        self._append("errors", message)

    def _call(self, what: str, fn: Callable[..., Any] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a caller bug must not end the session
            log.exception("%s callback failed", what)
            self._append("errors", redact_text(f"{what} callback failed: {type(exc).__name__}: {exc}"))

    def _missing(self, index: int, message: str) -> None:
        message = redact_text(message)  # stored with the snapshot by the callback
        self._append("missing", index)
        self._error(f"snapshot {index + 1}: {message}")
        self._call("on_missing", self.on_missing, index, message)

    def _run(self, skip: set[int]) -> None:
        clock = self.clock
        elapsed = 0.0
        if self.session_started_at is not None:
            elapsed = max(0.0, (clock.now() - self.session_started_at).total_seconds())
        t0 = clock.monotonic() - elapsed  # monotonic time of the session start
        try:
            for index, offset in enumerate(self.offsets):
                if index in skip:
                    continue
                due = t0 + offset
                if index + 1 < len(self.offsets):
                    latest: float | None = t0 + self.offsets[index + 1]
                else:
                    latest = t0 + self.session_end_s if self.session_end_s is not None else None
                wait_s = due - clock.monotonic()
                self._update(
                    state="waiting",
                    next_index=index,
                    next_due_at=clock.now() + timedelta(seconds=max(0.0, wait_s)),
                )
                if clock.wait(wait_s, self._stop):
                    self._update(state="stopped", next_index=None, next_due_at=None)
                    return
                now = clock.monotonic()
                if latest is not None and now > latest:
                    self._missing(
                        index,
                        f"not taken: its time passed {now - due:.0f} s ago while capture was not "
                        "running, and the next snapshot is already due",
                    )
                    continue
                self._update(state="capturing", next_due_at=None)
                try:
                    shot = capture_burst(
                        self.camera,
                        frames=self.burst_frames,
                        interval_s=self.burst_interval_s,
                        settle_s=self.settle_s,
                        deadline_s=self.capture_window_s,
                        attempts=self.attempts,
                        backoff_s=self.backoff_s,
                        use_light=self.use_light,
                        clock=clock,
                        stop=self._stop,
                    )
                except CaptureCancelled:
                    self._update(state="stopped", next_index=None, next_due_at=None)
                    return
                except CameraError as exc:
                    self._missing(index, str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - a backend bug: report, keep going
                    log.exception("unexpected error while capturing snapshot %d", index)
                    self._missing(index, f"unexpected error: {type(exc).__name__}: {exc}")
                    continue
                if shot.light_error:
                    self._error(f"snapshot {index + 1}: light problem: {shot.light_error}")
                for problem in shot.frame_errors:  # the burst is still used, with the frames it has
                    self._error(f"snapshot {index + 1}: {problem}")
                self._append("taken", index)
                self._call(
                    "on_snapshot",
                    self.on_snapshot,
                    index,
                    list(shot.frames),
                    shot.captured_at,
                    self.camera_label,
                    shot.light_used,
                )
                if self._stop.is_set():
                    self._update(state="stopped", next_index=None, next_due_at=None)
                    return
            self._update(state="done", next_index=None, next_due_at=None)
            self._call("on_done", self.on_done)
        except BaseException:  # pragma: no cover - keep the status truthful even on bugs
            self._update(state="stopped", next_index=None, next_due_at=None)
            raise
