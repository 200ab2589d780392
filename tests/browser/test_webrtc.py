"""The live webcam (streamlit-webrtc) in a real Chromium, fully offline.

Chromium's fake camera (``--use-fake-device-for-media-stream``, permission auto-granted by
``--use-fake-ui-for-media-stream``) plays a .y4m file written here from a faces_dev photo
(``--use-file-for-fake-video-capture``), so the stream shows a face. The WebRTC connection
has no STUN/TURN server (``iceServers: []``): aiortc and Chromium connect over host candidates.
Checks: the processed video plays (``readyState >= 2``), a screenshot is taken, and
"Capture this frame" goes through the enrollment path (accepted or rejected outcome shown).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.browser.app_server import running_app
from tests.browser.chromium import shared_browser
from tests.browser.test_e2e import PASSWORD, idle, nav, shot

pytestmark = pytest.mark.browser

STUDENT = "s_live"
WAIT = 90_000  # ms
FAKE_CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def write_y4m(path: Path, frame_bgr: np.ndarray, n_frames: int = 4, fps: int = 15) -> Path:
    """A tiny uncompressed YUV4MPEG2 (4:2:0) video of ``frame_bgr`` repeated (Chromium loops it)."""
    h, w = frame_bgr.shape[:2]
    yuv = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420)  # planar Y, U, V: (h * 3/2, w)
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for _ in range(n_frames):
            f.write(b"FRAME\n")
            f.write(yuv.tobytes())
    return path


@pytest.fixture(scope="module")
def fake_video(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    face = cv2.imread(str(sorted((data_dir / "faces_dev").glob("*/*.jpg"))[0]))
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[120:360, 200:440] = cv2.resize(face, (240, 240), interpolation=cv2.INTER_CUBIC)
    return write_y4m(tmp_path_factory.mktemp("cam") / "face.y4m", frame)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("webrtc"), models_dir, PASSWORD, db_name="webrtc.db") as (base, env):
        subprocess.run([sys.executable, "-c", "import sys; from aas_core.db import repo, session_scope\n"
                        "with session_scope(sys.argv[1]) as s: repo.add_student(s, sys.argv[2], 'Live Cam', consent=True)",
                        env["AAS_DATABASE_URL"], STUDENT], env=env, check=True, capture_output=True, timeout=60)
        yield base


@pytest.fixture(scope="module")
def page(server: str, fake_video: Path) -> Iterator[Any]:
    # a Chromium of its own: the fake camera is a command-line switch
    browser = shared_browser([*FAKE_CAMERA_ARGS, f"--use-file-for-fake-video-capture={fake_video}"])
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT)
    pg.goto(server)
    yield pg
    ctx.close()


def _video_state(frame: Any) -> dict[str, Any]:
    return frame.locator("video").first.evaluate(
        "v => ({readyState: v.readyState, w: v.videoWidth, h: v.videoHeight, t: v.currentTime})")


def test_live_webcam_streams_and_captures(page: Any) -> None:
    page.get_by_role("textbox", name="Username", exact=True).fill("admin")
    page.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Automated Attendance").wait_for()
    nav(page, "Students", "Enroll face photos")
    page.get_by_role("tab", name="Webcam").click()
    page.get_by_text("Live webcam (streaming)").click()
    idle(page)

    # the streamlit-webrtc component lives in an iframe; START asks for the (fake) camera
    iframe = page.locator('iframe[title*="webrtc"]').first
    iframe.wait_for()
    frame = iframe.content_frame
    frame.get_by_role("button", name="START").click()
    frame.locator("video").first.wait_for()
    page.wait_for_function(
        "el => { const v = el.contentDocument && el.contentDocument.querySelector('video');"
        " return v && v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0.5; }",
        arg=iframe.element_handle(), timeout=WAIT)
    state = _video_state(frame)
    assert state["readyState"] >= 2 and (state["w"], state["h"]) == (640, 480), state
    page.wait_for_timeout(1500)  # a few processed frames with boxes
    # the video coming back from the server has the green face box drawn on it
    green = frame.locator("video").first.evaluate(
        "v => { const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;"
        " const g = c.getContext('2d'); g.drawImage(v, 0, 0);"
        " const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 140 && d[i] < 110 && d[i + 2] < 110) n++;"
        " return n; }")
    assert green > 300, f"no face box on the returned video ({green} green pixels)"
    path = shot(page, "10_students_live_webcam")
    assert path.stat().st_size > 10_000

    # the frame the server holds has a face box drawn on the returned video: grab it via the button
    page.get_by_role("button", name="Capture this frame").click()
    page.get_by_text("Last batch:").wait_for()
    idle(page)
    outcome = page.get_by_text("live_webcam.jpg").first
    outcome.wait_for()
    text = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="live_webcam.jpg").first.inner_text()
    assert "accepted" in text or "rejected" in text, text
    print(f"capture outcome: {text}")
    shot(page, "11_students_live_capture")
    assert page.locator('[data-testid="stException"]').count() == 0
