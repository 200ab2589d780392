"""Hostile or broken cameras: every grab ends within a total deadline, bodies are capped,
anything that is not a usable image is a ``CameraError`` -- against the real fake HTTP camera."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from fake_camera import FakeCamera, make_frame

from aas_core.capture import (
    CameraConfig,
    CameraError,
    CaptureCancelled,
    DahuaCamera,
    IPWebcamCamera,
    SessionRunner,
    SnapshotURLCamera,
    capture_shot,
    grab_with_retry,
    grab_within,
    make_camera,
)
from aas_core.capture.httpio import DEFAULT_MAX_BODY_BYTES

MB = 1024 * 1024


def _snapshot(fake: FakeCamera, **kw: object) -> SnapshotURLCamera:
    return SnapshotURLCamera(fake.base_url + "/snapshot.jpg", **kw)  # type: ignore[arg-type]


BACKENDS: dict[str, Callable[..., object]] = {
    "snapshot_url": lambda fake, **kw: _snapshot(fake, **kw),
    "ipwebcam": lambda fake, **kw: IPWebcamCamera(fake.base_url, **kw),
    "dahua": lambda fake, **kw: DahuaCamera(fake.base_url, "admin", fake.password, **kw),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_trickling_camera_grab_fails_within_its_total_deadline(fake_camera: FakeCamera, backend: str) -> None:
    """1 byte every 0.3 s never trips a 1 s per-read timeout; the total deadline ends it."""
    fake_camera.trickle(0.3)
    cam = BACKENDS[backend](fake_camera, timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(CameraError, match=r"not complete within 1\.0 s"):
        cam.grab()  # type: ignore[attr-defined]
    # 1 s total + at most one more byte's wait; generous for a loaded machine, far from "forever"
    assert time.monotonic() - t0 < 4.0
    cam.close()  # type: ignore[attr-defined]


def test_camera_trickling_its_headers_is_abandoned_by_grab_within(fake_camera: FakeCamera) -> None:
    """Headers one byte every 0.3 s: httpx cannot bound this; grab_within gives up at its deadline."""
    fake_camera.trickle(0.3, in_headers=True)
    cam = _snapshot(fake_camera, timeout_s=5.0)
    t0 = time.monotonic()
    with pytest.raises(CameraError, match=r"no image within 1\.0 s"):
        grab_within(cam, 1.0)
    assert time.monotonic() - t0 < 2.5
    cam.close()


def test_grab_with_retry_abandons_a_stuck_attempt_at_the_window() -> None:
    release = threading.Event()

    class Stuck:
        name = "stuck"
        has_light = False

        def grab(self) -> np.ndarray:
            release.wait(30)  # a camera that never answers (until the test ends)
            return make_frame(0)

        def light(self, on: bool) -> None:
            pass

        def close(self) -> None:
            pass

    try:
        t0 = time.monotonic()
        with pytest.raises(CameraError, match="no image within"):
            grab_with_retry(Stuck(), deadline_s=1.5, attempts=3, backoff_s=0.1)
        assert 1.4 < time.monotonic() - t0 < 4.0  # the window (+ slack), not the camera's 30 s
        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        t0 = time.monotonic()
        with pytest.raises(CaptureCancelled):
            grab_with_retry(Stuck(), deadline_s=60, stop=stop)
        assert time.monotonic() - t0 < 2.0  # stop does not wait for the stuck grab
    finally:
        release.set()


def test_huge_body_without_length_is_cut_at_the_cap(fake_camera: FakeCamera) -> None:
    fake_camera.huge_body(2 * 1024 * MB, announce=False)  # 2 GB, generated as sent
    cam = _snapshot(fake_camera, timeout_s=10.0, max_body_bytes=1 * MB)
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="larger than the limit of 1048576 bytes"):
        cam.grab()
    assert time.monotonic() - t0 < 5.0
    time.sleep(0.2)  # let the server notice the closed connection
    # what was sent is the cap plus the sockets' buffers, nowhere near 2 GB
    assert fake_camera.body_bytes_sent < 64 * MB
    cam.close()


def test_huge_body_announced_is_refused_before_reading(fake_camera: FakeCamera) -> None:
    fake_camera.huge_body(2 * 1024 * MB, announce=True)
    cam = _snapshot(fake_camera, timeout_s=10.0)
    t0 = time.monotonic()
    with pytest.raises(CameraError, match=r"answer of 2147483648 bytes is larger than the limit .* not read"):
        cam.grab()
    assert time.monotonic() - t0 < 2.0
    cam.close()


def test_default_body_cap_is_32_mb_through_the_camera_config(fake_camera: FakeCamera) -> None:
    cfg = CameraConfig(kind="snapshot_url", url=fake_camera.base_url + "/snapshot.jpg", timeout_s=20)
    assert cfg.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 32 * MB
    fake_camera.huge_body(200 * MB, announce=False)
    cam = make_camera(cfg)
    with pytest.raises(CameraError, match=f"limit of {32 * MB} bytes"):
        cam.grab()
    cam.close()
    small = make_camera(CameraConfig(kind="ipwebcam", url=fake_camera.base_url, max_body_bytes=2048))
    fake_camera.clear_body_fault()  # the fake's real 320x240 JPEGs are 2.3-2.6 KB
    with pytest.raises(CameraError, match="limit of 2048 bytes"):
        small.grab()
    small.close()


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        (b"<html><body>Please log in</body></html>", "image/jpeg", "HTML page"),
        (b"\x00\x01garbage" * 100, "image/jpeg", "could not decode"),
        (b"%PDF-1.7 not a photo", "image/png", "could not decode"),
        (b"", "image/jpeg", "empty image body"),
    ],
)
def test_non_image_body_with_image_content_type_is_a_camera_error(fake_camera: FakeCamera, body: bytes, ctype: str,
                                                                  message: str) -> None:
    fake_camera.non_image(body, ctype)
    for cam in (_snapshot(fake_camera, timeout_s=2), IPWebcamCamera(fake_camera.base_url, timeout_s=2)):
        with pytest.raises(CameraError, match=message):
            cam.grab()
        cam.close()


def _bomb_png(w: int = 20000, h: int = 20000) -> bytes:
    """A valid 1-bit PNG of 400 MP in a few dozen KB (as tests/services/test_bad_input.py)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (w + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_decompression_bomb_from_a_camera_is_refused_from_the_header(fake_camera: FakeCamera) -> None:
    cam = _snapshot(fake_camera, timeout_s=5)
    # 64 MP: over our 50 MP limit (read from the header), under PIL's own bomb limit
    fake_camera.non_image(_bomb_png(8000, 8000), "image/png")
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="8000x8000 exceeds the limit of 50000000 pixels"):
        cam.grab()
    # 400 MP: PIL's own bomb check refuses it at open
    fake_camera.non_image(_bomb_png(), "image/png")
    with pytest.raises(CameraError, match="too large to decode"):
        cam.grab()
    assert time.monotonic() - t0 < 2.0  # no pixel decoded
    cam.close()


def test_lying_content_length(fake_camera: FakeCamera) -> None:
    jpeg = fake_camera.next_jpeg()
    cam = _snapshot(fake_camera, timeout_s=2)
    # claims less than it sends: only the claimed bytes are read -> a truncated image
    fake_camera.lying_length(100, jpeg + bytes(10 * MB))
    with pytest.raises(CameraError, match="could not decode"):
        cam.grab()
    # claims more than the cap: refused unread, whatever follows
    fake_camera.lying_length(10 * 1024 * MB, jpeg)
    with pytest.raises(CameraError, match="not read"):
        cam.grab()
    # claims more than it sends, then closes: a dropped connection, not a hang
    fake_camera.lying_length(len(jpeg) * 2, jpeg)
    with pytest.raises(CameraError, match="dropped mid-response"):
        cam.grab()
    fake_camera.clear_body_fault()
    assert cam.grab().shape == (240, 320, 3)
    cam.close()


def test_trickle_capture_switches_the_light_off_and_runner_records_missing(fake_camera: FakeCamera) -> None:
    fake_camera.trickle(0.3)
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=0.8)
    with pytest.raises(CameraError, match="not complete within"):
        capture_shot(cam, settle_s=0.01, attempts=2, deadline_s=2.0, backoff_s=0.05)
    assert fake_camera.light_log() == [True, False] and not fake_camera.torch_on

    missing: list[tuple[int, str]] = []
    done = threading.Event()
    runner = SessionRunner(cam, [0.0], on_snapshot=lambda *a: None, on_missing=lambda i, m: missing.append((i, m)),
                           on_done=done.set, settle_s=0.01, capture_window_s=1.5, attempts=3, backoff_s=0.05)
    t0 = time.monotonic()
    runner.start()
    assert done.wait(10)
    assert time.monotonic() - t0 < 6.0  # window 1.5 s + one attempt's floor + slack
    assert [i for i, _ in missing] == [0] and runner.status.missing == (0,)
    assert fake_camera.light_log()[-1] is False and not fake_camera.torch_on
    cam.close()


def test_stopping_a_runner_whose_grab_is_stuck_is_prompt(fake_camera: FakeCamera) -> None:
    fake_camera.trickle(0.5, in_headers=True)  # stuck for good: nothing the backend can bound
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=30)
    missing: list[int] = []
    runner = SessionRunner(cam, [0.0, 600.0], on_snapshot=lambda *a: None, on_missing=lambda i, m: missing.append(i),
                           settle_s=0.0, capture_window_s=120)
    runner.start()
    deadline = time.monotonic() + 5
    while not fake_camera.events_of("image_fault") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runner.status.state == "capturing"
    t0 = time.monotonic()
    assert runner.stop(timeout_s=5)
    assert time.monotonic() - t0 < 2.0
    assert runner.status.state == "stopped" and missing == []
    assert fake_camera.light_log() == [True, False] and not fake_camera.torch_on
    cam.close()
