"""Every backend against the real fake HTTP camera: images, light protocol, faults, secrets."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fake_camera import (
    FRAME_SIZE,
    PALETTE,
    FakeCamera,
    closed_port,
    dahua_default_hash,
    frame_number,
    make_frame,
    palette_index,
)

from aas_core.capture import (
    CameraError,
    DahuaCamera,
    HttpLight,
    IPWebcamCamera,
    RequestSpec,
    SnapshotURLCamera,
    StreamCamera,
    WithLight,
    capture_shot,
    dahua_login_hash,
)

W, H = FRAME_SIZE
FAST = {"settle_s": 0.01, "backoff_s": 0.01}


def assert_frame(img: np.ndarray) -> None:
    assert img.dtype == np.uint8 and img.shape == (H, W, 3)
    # A real picture from the server, not garbage: one of the palette colours.
    assert 0 <= palette_index(img) < len(PALETTE)


def assert_lit_capture(fake: FakeCamera) -> None:
    """Light went on, the image was served while it was on, and it went off again."""
    assert fake.light_log() == [True, False]
    images = fake.events_of("image")
    assert images and all(e.light_on for e in images)
    assert not fake.light_on


# --- IP Webcam ------------------------------------------------------------------------------


def test_ipwebcam_grab_with_torch(fake_camera: FakeCamera) -> None:
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=2)
    shot = capture_shot(cam, **FAST)
    assert_frame(shot.image)
    assert shot.light_used and shot.light_error is None
    assert_lit_capture(fake_camera)
    assert fake_camera.kinds() == ["torch", "image", "torch"]
    cam.close()


def test_ipwebcam_cycles_images(fake_camera: FakeCamera) -> None:
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=2)
    assert [palette_index(cam.grab()) for _ in range(5)] == [0, 1, 2, 3, 0]


def test_ipwebcam_basic_auth(fake_camera_auth: FakeCamera) -> None:
    fake = fake_camera_auth
    good = IPWebcamCamera(fake.base_url, "admin", fake.password, timeout_s=2)
    assert_frame(capture_shot(good, **FAST).image)
    assert_lit_capture(fake)

    bad = IPWebcamCamera(fake.base_url, "admin", "not-the-password-123", timeout_s=2)
    with pytest.raises(CameraError) as err:
        bad.grab()
    msg = str(err.value)
    assert "401" in msg and "wrong username or password" in msg
    assert "not-the-password-123" not in msg and "not-the-password-123" not in repr(bad)
    with pytest.raises(CameraError, match="torch on refused with HTTP 401"):
        bad.light(True)


FAULTS = ["http500", "drop", "timeout"]


def _inject(fake: FakeCamera, fault: str) -> None:
    if fault == "http500":
        fake.fail_next(10)
    elif fault == "drop":
        fake.drop_next(10)
    else:
        fake.delay_s = 1.0


FAULT_MESSAGES = {"http500": "HTTP 500", "drop": "dropped mid-response", "timeout": "no answer within"}


@pytest.mark.parametrize("fault", FAULTS)
def test_ipwebcam_light_off_when_grab_fails(fake_camera: FakeCamera, fault: str) -> None:
    _inject(fake_camera, fault)
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(CameraError, match=FAULT_MESSAGES[fault]):
        capture_shot(cam, attempts=2, deadline_s=2, **FAST)
    assert time.monotonic() - t0 < 3
    assert fake_camera.light_log() == [True, False]
    assert not fake_camera.torch_on


def test_retry_succeeds_after_two_500s(fake_camera: FakeCamera) -> None:
    fake_camera.fail_next(2)
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=2)
    shot = capture_shot(cam, attempts=3, deadline_s=5, **FAST)
    assert_frame(shot.image)
    assert fake_camera.kinds() == ["torch", "image_fail", "image_fail", "image", "torch"]
    assert not fake_camera.torch_on


def test_light_request_failure_does_not_lose_the_image(fake_camera: FakeCamera) -> None:
    fake_camera.light_fail_next(1)  # the "enable torch" request gets a 500
    cam = IPWebcamCamera(fake_camera.base_url, timeout_s=2)
    shot = capture_shot(cam, **FAST)
    assert_frame(shot.image)
    assert not shot.light_used and "HTTP 500" in (shot.light_error or "")
    assert fake_camera.light_log() == [False] and not fake_camera.torch_on


def test_unreachable_host_fails_fast() -> None:
    port = closed_port()
    cam = IPWebcamCamera(f"http://127.0.0.1:{port}", timeout_s=5)
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="cannot connect"):
        cam.grab()
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(CameraError, match="cannot connect"):
        SnapshotURLCamera(f"http://u:secret-pw@127.0.0.1:{port}/s.jpg", timeout_s=5).grab()


# --- still URL ---------------------------------------------------------------------------------


def test_snapshot_url_camera(fake_camera: FakeCamera) -> None:
    cam = SnapshotURLCamera(fake_camera.base_url + "/snapshot.jpg", timeout_s=2)
    assert_frame(cam.grab())
    assert not cam.has_light


def test_snapshot_url_corrupt_and_missing(fake_camera: FakeCamera) -> None:
    with pytest.raises(CameraError, match="could not decode"):
        SnapshotURLCamera(fake_camera.base_url + "/corrupt.jpg", timeout_s=2).grab()
    with pytest.raises(CameraError, match="HTTP 404"):
        SnapshotURLCamera(fake_camera.base_url + "/nothing.jpg", timeout_s=2).grab()


def test_snapshot_url_digest_auth(fake_camera: FakeCamera) -> None:
    url = fake_camera.base_url + "/cgi-bin/snapshot.cgi?channel=1"
    cam = SnapshotURLCamera(url, 2, username="admin", password=fake_camera.password, auth="digest")
    assert_frame(cam.grab())
    bad = SnapshotURLCamera(url, 2, username="admin", password="WRONG-pw-xyz", auth="digest")
    with pytest.raises(CameraError, match="wrong username or password") as err:
        bad.grab()
    assert "WRONG-pw-xyz" not in str(err.value)


def test_snapshot_url_redacts_credentials_in_url(fake_camera: FakeCamera) -> None:
    cam = SnapshotURLCamera(f"http://admin:url-secret-1@{fake_camera.host}/corrupt.jpg", timeout_s=2)
    assert "url-secret-1" not in repr(cam) and "url-secret-1" not in cam.name
    with pytest.raises(CameraError) as err:
        cam.grab()
    assert "url-secret-1" not in str(err.value) and "admin:***@" in str(err.value)


# --- Dahua -------------------------------------------------------------------------------------


def test_dahua_hash_matches_independent_implementation() -> None:
    args = ("admin", "pässword:1", "Login to 4X0ABC", "123456789")
    assert dahua_login_hash(*args) == dahua_default_hash(*args)
    assert len(dahua_login_hash(*args)) == 32 and dahua_login_hash(*args).isupper()


def test_dahua_light_and_snapshot(fake_camera: FakeCamera) -> None:
    cam = DahuaCamera(fake_camera.base_url, "admin", fake_camera.password, timeout_s=2)
    shot = capture_shot(cam, **FAST)
    assert_frame(shot.image)
    assert shot.light_used
    assert_lit_capture(fake_camera)
    assert [e.detail for e in fake_camera.events_of("dahua_io")] == [1, 2]
    assert len(fake_camera.events_of("login")) == 1  # one login, session reused for "off"
    cam.close()
    assert fake_camera.sessions == {}  # logged out


def test_dahua_wrong_password(fake_camera: FakeCamera) -> None:
    cam = DahuaCamera(fake_camera.base_url, "admin", "Wr0ng-Secret!", timeout_s=2)
    with pytest.raises(CameraError) as err:
        cam.light(True)
    msg = str(err.value)
    assert "wrong username or password" in msg and "Wr0ng-Secret!" not in msg
    assert "Wr0ng-Secret!" not in repr(cam)
    with pytest.raises(CameraError, match="wrong username or password") as err:
        cam.grab()  # digest auth on snapshot.cgi
    assert "Wr0ng-Secret!" not in str(err.value)
    assert fake_camera.events_of("login_fail")


def test_dahua_relogin_after_session_expiry(fake_camera: FakeCamera) -> None:
    cam = DahuaCamera(fake_camera.base_url, "admin", fake_camera.password, timeout_s=2)
    cam.light(True)
    fake_camera.expire_sessions()
    cam.light(False)
    assert not fake_camera.dahua_light_on
    assert len(fake_camera.events_of("login")) == 2
    assert fake_camera.events_of("rpc_invalid_session")


def test_dahua_keepalive_when_idle(fake_camera: FakeCamera) -> None:
    cam = DahuaCamera(fake_camera.base_url, "admin", fake_camera.password, timeout_s=2)
    cam.light(True)
    cam._last_used -= 3600  # simulate a long idle period
    cam.light(False)
    assert [e.detail for e in fake_camera.events_of("rpc")] == [
        "CoaxialControlIO.control",
        "global.keepAlive",
        "CoaxialControlIO.control",
    ]
    assert len(fake_camera.events_of("login")) == 1
    # Idle AND expired: keepalive is refused, so it logs in again.
    fake_camera.expire_sessions()
    cam._last_used -= 3600
    cam.light(True)
    assert len(fake_camera.events_of("login")) == 2 and fake_camera.dahua_light_on


@pytest.mark.parametrize("fault", FAULTS)
def test_dahua_light_off_when_grab_fails(fake_camera: FakeCamera, fault: str) -> None:
    _inject(fake_camera, fault)
    cam = DahuaCamera(fake_camera.base_url, "admin", fake_camera.password, timeout_s=0.3)
    with pytest.raises(CameraError, match=FAULT_MESSAGES[fault]):
        capture_shot(cam, attempts=2, deadline_s=2, **FAST)
    assert fake_camera.light_log() == [True, False] and not fake_camera.dahua_light_on


def test_dahua_image_from_stream(fake_camera: FakeCamera) -> None:
    cam = DahuaCamera(
        fake_camera.base_url, "admin", fake_camera.password, rtsp_url=fake_camera.base_url + "/video", timeout_s=2
    )
    assert_frame(capture_shot(cam, **FAST).image)
    assert not fake_camera.events_of("image")  # came from the stream, not snapshot.cgi
    assert fake_camera.events_of("stream_open")[0].light_on
    assert fake_camera.light_log() == [True, False]


# --- OpenCV streams ------------------------------------------------------------------------------


def test_stream_camera_reads_mjpeg_over_http(fake_camera: FakeCamera) -> None:
    cam = StreamCamera(fake_camera.base_url + "/video", timeout_s=2)
    assert not cam.keep_open  # network source: fresh connection per grab
    for _ in range(2):
        img = cam.grab()
        assert_frame(img)
        # Fresh: at most a few frames behind what the server has produced so far.
        assert fake_camera.frame_counter - frame_number(img) <= cam.flush_frames + 3
    assert len(fake_camera.events_of("stream_open")) == 2
    cam.close()


def test_stream_camera_kept_open_drops_buffered_frames(fake_camera: FakeCamera) -> None:
    cam = StreamCamera(fake_camera.base_url + "/video", timeout_s=2, keep_open=True, flush_frames=3)
    first = frame_number(cam.grab())
    second = frame_number(cam.grab())
    assert second - first == 4  # 3 flushed + the one retrieved: buffered frames are skipped
    time.sleep(0.2)  # the server keeps producing frames meanwhile
    assert frame_number(cam.grab()) == second + 4
    assert len(fake_camera.events_of("stream_open")) == 1
    cam.close()


def test_frame_number_round_trip() -> None:
    for i in (0, 1, 7, 100, 259):
        img = cv2.imdecode(np.frombuffer(cv2.imencode(".jpg", make_frame(i))[1], np.uint8), cv2.IMREAD_COLOR)
        assert frame_number(img) == i


def test_stream_camera_stalled_stream_times_out(fake_camera: FakeCamera) -> None:
    fake_camera.stall_stream = True
    cam = StreamCamera(fake_camera.base_url + "/video", timeout_s=0.4)
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="timed out|no frame"):
        cam.grab()
    assert time.monotonic() - t0 < 3


def test_stream_camera_stall_after_open_times_out_and_reconnects(fake_camera: FakeCamera) -> None:
    cam = StreamCamera(fake_camera.base_url + "/video", timeout_s=0.4, keep_open=True, flush_frames=0)
    assert_frame(cam.grab())
    fake_camera.stall_stream = True
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="timed out|no frame"):
        cam.grab()
    assert time.monotonic() - t0 < 4
    fake_camera.stall_stream = False
    assert_frame(cam.grab())  # reconnects
    cam.close()


def test_stream_camera_unreachable_is_quick_and_redacted() -> None:
    port = closed_port()
    for url in (f"http://127.0.0.1:{port}/video", f"rtsp://admin:rtsp-Secret9@127.0.0.1:{port}/live"):
        cam = StreamCamera(url, timeout_s=3)
        t0 = time.monotonic()
        with pytest.raises(CameraError, match="opening the stream failed") as err:
            cam.grab()
        assert time.monotonic() - t0 < 2
        assert "rtsp-Secret9" not in str(err.value) and "rtsp-Secret9" not in repr(cam)


def _write_video(path: Path, n: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    assert writer.isOpened()
    for i in range(n):
        writer.write(make_frame(i))
    writer.release()


def test_stream_camera_video_file(tmp_path: Path) -> None:
    path = tmp_path / "lesson.avi"
    _write_video(path, 3)
    cam = StreamCamera(str(path))
    assert cam.keep_open and cam.flush_frames == 0
    assert [palette_index(cam.grab()) for _ in range(5)] == [0, 1, 2, 0, 1]  # loops
    cam.close()
    once = StreamCamera(str(path), loop=False)
    for _ in range(3):
        once.grab()
    with pytest.raises(CameraError, match="end of video file"):
        once.grab()
    with pytest.raises(CameraError, match="not found"):
        StreamCamera(str(tmp_path / "nope.avi")).grab()


def test_stream_camera_with_light_controller(fake_camera: FakeCamera) -> None:
    torch = IPWebcamCamera(fake_camera.base_url, timeout_s=2)
    cam = StreamCamera(fake_camera.base_url + "/video", timeout_s=2, light=torch)
    assert cam.has_light
    assert_frame(capture_shot(cam, **FAST).image)
    assert fake_camera.light_log() == [True, False]
    assert fake_camera.events_of("stream_open")[0].light_on
    cam.close()


# --- generic HTTP light ----------------------------------------------------------------------------


def test_http_light_with_any_camera(fake_camera: FakeCamera) -> None:
    light = HttpLight(
        RequestSpec(method="GET", url=fake_camera.base_url + "/enabletorch", headers={"X-Token": "tok-SECRET"}),
        RequestSpec(method="GET", url=fake_camera.base_url + "/disabletorch"),
    )
    cam = WithLight(SnapshotURLCamera(fake_camera.base_url + "/snapshot.jpg", timeout_s=2), light, name="room 1")
    shot = capture_shot(cam, **FAST)
    assert_frame(shot.image)
    assert shot.camera_name == "room 1" and shot.light_used
    assert_lit_capture(fake_camera)
    assert "tok-SECRET" not in repr(light) and "tok-SECRET" not in repr(light.on_request)
    cam.close()


def test_http_light_errors(fake_camera: FakeCamera) -> None:
    light = HttpLight(
        RequestSpec(url=fake_camera.base_url + "/enabletorch"),  # POST: unknown to the fake
        RequestSpec(method="GET", url=f"http://u:light-pw@127.0.0.1:{closed_port()}/off"),
    )
    with pytest.raises(CameraError, match="HTTP 404"):
        light.light(True)
    with pytest.raises(CameraError, match="cannot connect") as err:
        light.light(False)
    assert "light-pw" not in str(err.value)


def test_rtsp_uses_tcp_only_during_open(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import aas_core.capture.stream as stream_mod

    seen: list[str | None] = []

    class FakeCapture:
        def __init__(self, source: object, api: int, params: list[int]) -> None:
            seen.append(os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS"))

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV API
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr(stream_mod.cv2, "VideoCapture", FakeCapture)
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    with pytest.raises(CameraError):
        StreamCamera("rtsp://cam/live", timeout_s=1).grab()
    with pytest.raises(CameraError):
        StreamCamera("http://cam/video", timeout_s=1).grab()
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "stimeout;5")
    with pytest.raises(CameraError):
        StreamCamera("rtsp://cam/live", timeout_s=1, rtsp_transport="udp").grab()
    assert seen == ["rtsp_transport;tcp", None, "stimeout;5|rtsp_transport;udp"]
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "stimeout;5"  # restored
