"""Light/retry guarantees, redaction and decoding, with in-memory cameras."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from fake_camera import FakeClock, make_frame

from aas_core.capture import (
    Camera,
    CameraError,
    CaptureCancelled,
    ImageSequenceCamera,
    capture_shot,
    capture_with_light,
    decode_image,
    grab_with_retry,
    redact_url,
)
from aas_core.capture.base import scrub


class ScriptedCamera:
    """grab() returns/raises the scripted results in order; light() can be told to fail."""

    name = "scripted"

    def __init__(
        self,
        results: list[np.ndarray | Exception],
        *,
        fail_light_on: bool = False,
        fail_light_off: int = 0,
        has_light: bool = True,
    ) -> None:
        self.results = list(results)
        self.fail_light_on = fail_light_on
        self.fail_light_off = fail_light_off
        self.has_light = has_light
        self.light_on = False
        self.calls: list[str] = []

    def grab(self) -> np.ndarray:
        self.calls.append(f"grab(light={self.light_on})")
        r = self.results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    def light(self, on: bool) -> None:
        self.calls.append(f"light({on})")
        if on and self.fail_light_on:
            self.light_on = True  # the request "failed" after the light actually went on
            raise CameraError("torch request timed out")
        if not on and self.fail_light_off > 0:
            self.fail_light_off -= 1
            raise CameraError("torch off failed")
        self.light_on = on

    def close(self) -> None:
        pass


IMG = make_frame(0)


def test_protocol_is_structural() -> None:
    assert isinstance(ScriptedCamera([]), Camera)
    assert isinstance(ImageSequenceCamera([IMG]), Camera)


def test_light_on_during_grab_and_off_after() -> None:
    cam = ScriptedCamera([IMG])
    clock = FakeClock()
    shot = capture_shot(cam, settle_s=1.5, clock=clock)
    assert cam.calls == ["light(True)", "grab(light=True)", "light(False)"]
    assert clock.waits == [1.5]  # settled before grabbing
    assert shot.light_used and shot.light_error is None
    assert shot.camera_name == "scripted"
    assert shot.captured_at == clock.now()
    assert np.array_equal(shot.image, IMG)


def test_light_off_when_grab_fails() -> None:
    cam = ScriptedCamera([CameraError("boom")] * 3)
    with pytest.raises(CameraError, match="3 attempt"):
        capture_shot(cam, settle_s=0, attempts=3, deadline_s=10, backoff_s=0.001, clock=FakeClock())
    assert cam.calls[0] == "light(True)" and cam.calls[-1] == "light(False)"
    assert cam.calls.count("light(False)") == 1 and not cam.light_on


def test_light_off_when_grab_raises_a_bug() -> None:
    cam = ScriptedCamera([ZeroDivisionError("bug")])
    with pytest.raises(ZeroDivisionError):
        capture_with_light(cam, 0)
    assert cam.calls[-1] == "light(False)" and not cam.light_on


def test_light_on_failure_still_captures_and_switches_off() -> None:
    cam = ScriptedCamera([IMG], fail_light_on=True)
    shot = capture_shot(cam, settle_s=5, clock=FakeClock())
    assert not shot.light_used
    assert shot.light_error and "timed out" in shot.light_error
    assert cam.calls[-1] == "light(False)" and not cam.light_on  # off although "on" failed


def test_light_off_failure_is_retried_then_reported_not_raised() -> None:
    cam = ScriptedCamera([IMG], fail_light_off=1)
    shot = capture_shot(cam, settle_s=0)
    assert shot.light_error is None and cam.calls.count("light(False)") == 2 and not cam.light_on
    cam = ScriptedCamera([IMG], fail_light_off=5)
    shot = capture_shot(cam, settle_s=0)
    assert shot.light_error and "switching the light off failed" in shot.light_error
    assert np.array_equal(shot.image, IMG)  # the image is not lost


def test_no_light_calls_for_cameras_without_light() -> None:
    cam = ScriptedCamera([IMG], has_light=False)
    shot = capture_shot(cam, settle_s=3)
    assert cam.calls == ["grab(light=False)"] and not shot.light_used
    cam = ScriptedCamera([IMG])
    assert not capture_shot(cam, use_light=False).light_used and cam.calls == ["grab(light=False)"]


def test_retry_succeeds_after_failures_with_backoff() -> None:
    cam = ScriptedCamera([CameraError("500"), CameraError("500"), IMG])
    clock = FakeClock()
    img = grab_with_retry(cam, deadline_s=60, attempts=3, backoff_s=0.5, clock=clock)
    assert np.array_equal(img, IMG)
    assert clock.waits == [0.5, 1.0]  # exponential backoff


def test_retry_respects_deadline() -> None:
    cam = ScriptedCamera([CameraError("down")] * 10)
    clock = FakeClock()
    with pytest.raises(CameraError, match=r"no image after 3 attempt\(s\).*last error: down"):
        grab_with_retry(cam, deadline_s=1.2, attempts=10, backoff_s=0.5, clock=clock)
    assert sum(clock.waits) <= 1.2 + 1e-9


def test_retry_cancelled_by_stop() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(CaptureCancelled):
        grab_with_retry(ScriptedCamera([IMG]), 10, stop=stop)
    cam = ScriptedCamera([IMG])
    with pytest.raises(CaptureCancelled):
        capture_shot(cam, settle_s=1, stop=stop)
    assert cam.calls[-1] == "light(False)"


def test_retry_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError):
        grab_with_retry(ScriptedCamera([IMG]), 1, attempts=0)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/cam/realmonitor?channel=1", "rtsp://admin:***@10.0.0.5:554/cam/realmonitor?channel=1"),
        ("http://user@host/x", "http://user@host/x"),
        ("http://host/snap.jpg?user=a&password=hunter2&token=abc", "http://host/snap.jpg?user=a&password=***&token=***"),
        ("/tmp/video.mp4", "/tmp/video.mp4"),
        (0, "0"),
        # database URLs go through the same function (aas_core.config.redact_url)
        ("mysql+pymysql://aas:hunter2@db:3306/aas?charset=utf8", "mysql+pymysql://aas:***@db:3306/aas?charset=utf8"),
        ("sqlite:///data/aas.db", "sqlite:///data/aas.db"),
        ("mysql+pymysql://aas:hun/ter2@db/aas", "<unparseable url>"),  # "/" in the password: host unknown
        ("user:hunter2@db", "<unparseable url>"),
    ],
)
def test_redact_url(url: str | int, expected: str) -> None:
    from aas_core.config import redact_url as config_redact_url

    assert redact_url(url) == expected
    assert config_redact_url is redact_url  # one implementation for camera and database URLs


def test_scrub() -> None:
    assert scrub("failed for http://a:p%40ss@h and p@ss", ["p@ss", None, ""]) == "failed for http://a:***@h and ***"


def test_decode_image_errors() -> None:
    ok, jpg = cv2.imencode(".jpg", IMG)
    assert decode_image(jpg.tobytes(), "x").shape == IMG.shape
    with pytest.raises(CameraError, match="empty image body"):
        decode_image(b"", "cam")
    with pytest.raises(CameraError, match="HTML page"):
        decode_image(b"<html><body>login</body></html>", "cam")
    with pytest.raises(CameraError, match="exceeds the limit"):
        decode_image(jpg.tobytes(), "cam", max_pixels=100)


def test_decode_image_not_an_image_with_ultralytics_loaded() -> None:
    """Ultralytics wraps PIL's Image.open (pip-installs pi-heif on unknown files): decoding must not use it."""
    import ultralytics.utils.patches  # noqa: F401 - applies the wrapper

    with pytest.raises(CameraError, match="HTML page"):
        decode_image(b"<!DOCTYPE html><html>login</html>", "cam")


def test_image_sequence_camera(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), make_frame(1))
    gray = np.full((10, 12), 7, np.uint8)
    cam = ImageSequenceCamera([str(path), gray, IMG], loop=False)
    assert len(cam) == 3
    first = cam.grab()
    assert first.shape == (240, 320, 3)
    first[:] = 0  # a copy: the camera's frame is untouched
    assert cam.grab().shape == (10, 12, 3)
    assert np.array_equal(cam.grab(), IMG)
    with pytest.raises(CameraError, match="no more images"):
        cam.grab()
    looped = ImageSequenceCamera([IMG, gray])
    assert [looped.grab().shape[0] for _ in range(4)] == [240, 10, 240, 10]
    looped.light(True)
    looped.light(False)
    assert looped.light_events == [True, False] and not looped.has_light
    with pytest.raises(CameraError, match="cannot read file"):
        ImageSequenceCamera([tmp_path / "missing.jpg"])
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(CameraError, match="bad.jpg"):
        ImageSequenceCamera([tmp_path / "bad.jpg"])
    with pytest.raises(ValueError):
        ImageSequenceCamera([])
    looped.close()
    with pytest.raises(CameraError, match="closed"):
        looped.grab()


def test_lit_context_manager() -> None:
    from aas_core.capture import lit

    cam = ScriptedCamera([IMG, CameraError("x")])
    with lit(cam, 0) as light:
        assert cam.light_on and light.used
        cam.grab()
    assert not cam.light_on
    with pytest.raises(CameraError), lit(cam, 0):
        cam.grab()
    assert not cam.light_on and cam.calls.count("light(False)") == 2
