"""SessionRunner: order, light protocol, missing snapshots, stop, resume."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fake_camera import FakeCamera, FakeClock, make_frame, palette_index

from aas_core.capture import (
    CameraError,
    CapturePlan,
    ImageSequenceCamera,
    IPWebcamCamera,
    SessionRunner,
)


class Recorder:
    """Collects callback calls; ``done`` is set by on_done."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[int, np.ndarray, Any, str, bool]] = []
        self.bursts: list[list[np.ndarray]] = []
        self.missing: list[tuple[int, str]] = []
        self.done = threading.Event()
        self.order: list[str] = []

    def on_snapshot(self, index: int, frames: list[np.ndarray], captured_at: Any, camera_name: str,
                    light_used: bool) -> None:
        # the runner hands over the snapshot's burst; these tests take one frame per snapshot
        self.snapshots.append((index, frames[0], captured_at, camera_name, light_used))
        self.bursts.append(frames)
        self.order.append(f"snap{index}")

    def on_missing(self, index: int, message: str) -> None:
        self.missing.append((index, message))
        self.order.append(f"miss{index}")

    def on_done(self) -> None:
        self.order.append("done")
        self.done.set()

    def callbacks(self) -> dict[str, Any]:
        return {"on_snapshot": self.on_snapshot, "on_missing": self.on_missing, "on_done": self.on_done}


def test_plan_runs_in_virtual_time_in_order(fake_clock: FakeClock) -> None:
    rec = Recorder()
    cam = ImageSequenceCamera([make_frame(i) for i in range(3)], name="room-101", has_light=True)
    plan = CapturePlan()
    runner = SessionRunner.from_plan(
        cam, plan, seed=7, clock=fake_clock, session_started_at=fake_clock.now(), settle_s=1.0, **rec.callbacks()
    )
    runner.start()
    assert runner.join(5)
    assert rec.order == ["snap0", "snap1", "snap2", "done"]
    assert [palette_index(s[1]) for s in rec.snapshots] == [0, 1, 2]
    offsets = plan.schedule(7)
    for (index, _, captured_at, name, light_used), off in zip(rec.snapshots, offsets, strict=True):
        # captured at the scheduled offset (+ the 1 s light settle time)
        assert captured_at - fake_clock.start == timedelta(seconds=off + 1.0)
        assert name == "room-101" and light_used
    assert cam.light_events == [True, False] * 3 and not cam.light_on
    st = runner.status
    assert st.state == "done" and st.taken == (0, 1, 2) and st.missing == () and st.errors == ()
    assert st.finished and st.next_due_at is None


def test_status_shows_next_due(fake_clock: FakeClock) -> None:
    release = threading.Event()
    seen: list[Any] = []

    class SlowClock(FakeClock):
        def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
            if seconds > 100:
                seen.append(runner.status)
                release.wait(2)
            return super().wait(seconds, stop)

    clock = SlowClock()
    rec = Recorder()
    runner = SessionRunner(
        ImageSequenceCamera([make_frame(0)]), [300.0], clock=clock, session_started_at=clock.now(), **rec.callbacks()
    )
    runner.start()
    time.sleep(0.05)
    release.set()
    assert runner.join(5)
    assert seen and seen[0].state == "waiting" and seen[0].next_index == 0
    assert seen[0].next_due_at == clock.start + timedelta(seconds=300)


def test_with_fake_http_camera_light_off_after_every_capture(fake_camera: FakeCamera) -> None:
    rec = Recorder()
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=2)
    runner = SessionRunner(cam, [0.0, 0.25, 0.5], settle_s=0.01, backoff_s=0.01, **rec.callbacks())
    runner.start()
    assert rec.done.wait(10)
    assert [s[0] for s in rec.snapshots] == [0, 1, 2]
    assert all(s[4] for s in rec.snapshots)  # light used
    assert fake_camera.kinds() == ["torch", "image", "torch"] * 3
    assert all(e.light_on for e in fake_camera.events_of("image"))
    assert fake_camera.light_log() == [True, False] * 3 and not fake_camera.torch_on
    times = [s[2] for s in rec.snapshots]
    assert times == sorted(times)


def test_failing_camera_reports_missing_after_retries(fake_camera: FakeCamera) -> None:
    fake_camera.fail_next(3)  # exactly the 3 attempts of snapshot 0
    rec = Recorder()
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=2)
    runner = SessionRunner(cam, [0.0, 0.01], settle_s=0.01, attempts=3, backoff_s=0.01, **rec.callbacks())
    runner.start()
    assert rec.done.wait(10)
    assert rec.order == ["miss0", "snap1", "done"]
    index, message = rec.missing[0]
    assert index == 0 and "3 attempt(s)" in message and "HTTP 500" in message
    assert len(fake_camera.events_of("image_fail")) == 3
    assert fake_camera.light_log() == [True, False, True, False] and not fake_camera.torch_on
    st = runner.status
    assert st.missing == (0,) and st.taken == (1,) and any("snapshot 1" in e for e in st.errors)


def test_unreachable_camera_all_missing(fake_clock: FakeClock) -> None:
    class Dead:
        name = "dead"
        has_light = False

        def grab(self) -> np.ndarray:
            raise CameraError("dead: cannot connect")

        def light(self, on: bool) -> None:
            pass

        def close(self) -> None:
            pass

    rec = Recorder()
    runner = SessionRunner(Dead(), [1.0, 2.0], clock=fake_clock, attempts=2, **rec.callbacks())
    runner.start()
    assert runner.join(5)
    assert rec.order == ["miss0", "miss1", "done"]
    assert all("cannot connect" in m for _, m in rec.missing)


def test_stop_mid_session_is_prompt() -> None:
    rec = Recorder()
    cam = ImageSequenceCamera([make_frame(0)], has_light=True)
    runner = SessionRunner(cam, [0.0, 30.0, 60.0], settle_s=0.0, **rec.callbacks())
    runner.start()
    deadline = time.monotonic() + 5
    while not rec.snapshots and time.monotonic() < deadline:
        time.sleep(0.005)
    t0 = time.monotonic()
    assert runner.stop(timeout_s=2)
    assert time.monotonic() - t0 < 0.5
    assert rec.order == ["snap0"]  # no on_done after stop
    assert runner.status.state == "stopped" and not runner.running
    assert not cam.light_on


def test_stop_during_capture_switches_light_off(fake_camera: FakeCamera) -> None:
    fake_camera.delay_s = 0.3  # the grab is slow
    rec = Recorder()
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=0.1)
    runner = SessionRunner(cam, [0.0], settle_s=0.0, attempts=5, backoff_s=0.5, capture_window_s=30, **rec.callbacks())
    runner.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    assert runner.stop(timeout_s=3)
    assert time.monotonic() - t0 < 1.0  # within the backend timeout, not the 30 s window
    assert runner.status.state == "stopped"
    assert not fake_camera.torch_on and fake_camera.light_log()[-1] is False


def test_resume_skips_stored_and_late_rules(fake_clock: FakeClock) -> None:
    # The session started 1000 s ago; snapshot 0 (t=300) is stored already, snapshot 1
    # (t=900) was missed while the app was down but snapshot 2 (t=1500) is not due yet,
    # so 1 is taken late; snapshot 3 comes at its time.
    started = fake_clock.now() - timedelta(seconds=1000)
    rec = Recorder()
    cam = ImageSequenceCamera([make_frame(i) for i in range(4)])
    runner = SessionRunner(
        cam, [300.0, 900.0, 1500.0, 2000.0], clock=fake_clock, session_started_at=started, settle_s=0, **rec.callbacks()
    )
    runner.start(skip_indices={0})
    assert runner.join(5)
    assert rec.order == ["snap1", "snap2", "snap3", "done"]
    assert runner.status.skipped == (0,)
    assert rec.snapshots[1][2] - started == timedelta(seconds=1500)


def test_resume_too_late_reports_missing(fake_clock: FakeClock) -> None:
    started = fake_clock.now() - timedelta(seconds=1600)  # past snapshot 1's and 2's time
    rec = Recorder()
    runner = SessionRunner(
        ImageSequenceCamera([make_frame(0)]),
        [300.0, 900.0, 1500.0],
        clock=fake_clock,
        session_started_at=started,
        session_end_s=3000.0,
        **rec.callbacks(),
    )
    runner.start(skip_indices=[0])
    assert runner.join(5)
    assert rec.order == ["miss1", "snap2", "done"]
    assert "not taken" in rec.missing[0][1]


def test_last_snapshot_after_session_end_is_missing(fake_clock: FakeClock) -> None:
    started = fake_clock.now() - timedelta(seconds=4000)
    rec = Recorder()
    runner = SessionRunner.from_plan(
        ImageSequenceCamera([make_frame(0)]), CapturePlan(), 3, clock=fake_clock, session_started_at=started, **rec.callbacks()
    )
    runner.start(skip_indices=[0, 1])
    assert runner.join(5)
    assert rec.order == ["miss2", "done"]


def test_callback_errors_do_not_stop_the_session(fake_clock: FakeClock) -> None:
    calls: list[int] = []

    def on_snapshot(index: int, *_: Any) -> None:
        calls.append(index)
        if index == 0:
            raise RuntimeError("database is locked")

    done = threading.Event()
    runner = SessionRunner(
        ImageSequenceCamera([make_frame(0)]), [1.0, 2.0], on_snapshot=on_snapshot, on_done=done.set, clock=fake_clock
    )
    runner.start()
    assert runner.join(5) and done.is_set()
    assert calls == [0, 1]
    assert any("database is locked" in e for e in runner.status.errors)


def test_argument_validation() -> None:
    cam = ImageSequenceCamera([make_frame(0)])
    with pytest.raises(ValueError, match="time order"):
        SessionRunner(cam, [5.0, 1.0], on_snapshot=lambda *a: None)
    runner = SessionRunner(cam, [0.0], on_snapshot=lambda *a: None, clock=FakeClock())
    with pytest.raises(ValueError, match="out of range"):
        runner.start(skip_indices=[3])
    runner.start()
    assert runner.join(5)
    runner.start(skip_indices=[0])  # restartable once finished
    assert runner.join(5) and runner.status.state == "done"
