"""Bursts: every scheduled snapshot is N frames taken with the light on once, off after."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from fake_camera import FakeCamera, FakeClock, make_frame, palette_index

from aas_core.capture import CameraError, IPWebcamCamera, SessionRunner, capture_burst
from aas_core.capture.base import CaptureCancelled


class Recorder:
    def __init__(self) -> None:
        self.bursts: list[tuple[int, list[np.ndarray], bool]] = []
        self.missing: list[tuple[int, str]] = []
        self.done = threading.Event()

    def callbacks(self) -> dict[str, Any]:
        return {"on_snapshot": lambda i, frames, _t, _n, light: self.bursts.append((i, frames, light)),
                "on_missing": lambda i, m: self.missing.append((i, m)), "on_done": self.done.set}


class ScriptedCamera:
    """Frames 0, 1, 2, ... in order; grabs whose number is in ``fail`` raise (numbered from 0)."""

    name = "scripted"
    has_light = True

    def __init__(self, fail: set[int] = frozenset(), clock: FakeClock | None = None) -> None:  # type: ignore[assignment]
        self.fail = set(fail)
        self.grabs = 0
        self.light_events: list[bool] = []
        self.grab_light: list[bool] = []

    def grab(self) -> np.ndarray:
        k = self.grabs
        self.grabs += 1
        self.grab_light.append(bool(self.light_events) and self.light_events[-1])
        if k in self.fail:
            raise CameraError(f"grab {k} failed")
        return make_frame(k)

    def light(self, on: bool) -> None:
        self.light_events.append(on)

    def close(self) -> None:
        pass


def test_runner_takes_bursts_with_the_light_on_once_per_snapshot(fake_camera: FakeCamera) -> None:
    rec = Recorder()
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=2)
    runner = SessionRunner(cam, [0.0, 0.5], settle_s=0.01, backoff_s=0.01, burst_frames=4, burst_interval_s=0.05,
                           **rec.callbacks())
    runner.start()
    assert rec.done.wait(10)
    assert [(i, len(frames), light) for i, frames, light in rec.bursts] == [(0, 4, True), (1, 4, True)]
    # one on/off cycle around N grabs, per snapshot; every grab with the light on
    assert fake_camera.kinds() == ["torch", "image", "image", "image", "image", "torch"] * 2
    assert all(e.light_on for e in fake_camera.events_of("image"))
    assert fake_camera.light_log() == [True, False] * 2 and not fake_camera.torch_on
    assert [palette_index(f) for f in rec.bursts[0][1]] == [0, 1, 2, 3]  # in capture order
    assert runner.status.errors == ()


def test_a_failing_middle_frame_leaves_a_usable_burst(fake_clock: FakeClock) -> None:
    rec = Recorder()
    cam = ScriptedCamera(fail={2})
    runner = SessionRunner(cam, [0.0], clock=fake_clock, settle_s=0.5, burst_frames=5, burst_interval_s=0.4,
                           **rec.callbacks())
    runner.start()
    assert rec.done.wait(5)
    [(index, frames, light)] = rec.bursts
    assert index == 0 and light and len(frames) == 4
    assert [palette_index(f) for f in frames] == [0 % 4, 1 % 4, 3 % 4, 4 % 4]
    assert cam.grabs == 5  # the failed frame is not retried (it would stretch the burst)
    assert cam.light_events == [True, False] and all(cam.grab_light)
    assert rec.missing == [] and len(runner.status.errors) == 1 and "frame 3 of 5" in runner.status.errors[0]
    assert runner.status.taken == (0,)


def test_a_burst_without_any_frame_is_a_missing_snapshot_and_the_light_goes_off() -> None:
    rec = Recorder()
    cam = ScriptedCamera(fail=set(range(100)))
    runner = SessionRunner(cam, [0.0, 1.0], clock=FakeClock(), settle_s=0.0, attempts=2, backoff_s=0.01,
                           capture_window_s=5.0, burst_frames=3, burst_interval_s=0.4, **rec.callbacks())
    runner.start()
    assert rec.done.wait(5)
    assert rec.bursts == [] and [i for i, _ in rec.missing] == [0, 1]
    assert "no frame of a burst of 3" in rec.missing[0][1]
    assert cam.light_events == [True, False, True, False]


def test_every_grab_of_a_burst_is_bounded_by_the_capture_window() -> None:
    clock = FakeClock()
    cam = ScriptedCamera()
    # frames are due at 0, 10, 20, 30, 40 s; the window closes at 25 s
    shot = capture_burst(cam, frames=5, interval_s=10.0, settle_s=0.0, deadline_s=25.0, clock=clock)
    assert len(shot.frames) == 3 and cam.grabs == 3 and cam.light_events == [True, False]
    assert shot.frame_errors == ("frames 4-5 of 5 not taken: the capture window of 25 s had passed",)
    assert shot.image is shot.frames[0]


def test_stopping_during_a_burst_cancels_it_and_switches_the_light_off() -> None:
    stop = threading.Event()

    class StopsAfterTwo(ScriptedCamera):
        def grab(self) -> np.ndarray:
            if self.grabs == 1:
                stop.set()
            return super().grab()

    cam = StopsAfterTwo()
    with pytest.raises(CaptureCancelled):
        capture_burst(cam, frames=5, interval_s=0.4, settle_s=0.0, clock=FakeClock(), stop=stop)
    assert cam.grabs == 2 and cam.light_events == [True, False]


def test_a_single_frame_is_the_old_single_shot() -> None:
    cam = ScriptedCamera(fail={0})
    with pytest.raises(CameraError, match="grab 0 failed"):  # the grab's own message, as before bursts
        capture_burst(cam, frames=1, settle_s=0.0, attempts=1, clock=FakeClock())
    shot = capture_burst(ScriptedCamera(), frames=1, settle_s=0.0, clock=FakeClock())
    assert len(shot.frames) == 1 and shot.frame_errors == ()
