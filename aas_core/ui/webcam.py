"""Live browser webcam with face boxes (streamlit-webrtc), and the frame the page can grab.

``live_face_preview(key, pipeline)`` wraps ``streamlit_webrtc.webrtc_streamer``: the browser
sends its camera over WebRTC, a ``video_frame_callback`` (run by aiortc in *another thread*)
finds faces and sends the annotated frame back. No STUN/TURN server is configured
(``{"iceServers": []}``): the app runs offline on a local network, so host candidates are
all ICE needs (browser and server see each other directly).

The callback must stay fast on a CPU (~100 ms): the detector runs on a downscaled copy
(``max_side``) and only on every ``every``-th frame (``FrameSkipper``), the boxes of the
last detection are drawn on the frames in between. The latest raw frame and its boxes go
to a ``LatestFrame`` holder (lock-protected) so the page can take "the current frame" with
a button. Everything except ``live_face_preview`` is plain Python, testable without WebRTC.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from aas_core.media.draw import GREEN, ORANGE, box_on, jpeg_bytes

#: No STUN/TURN: offline, local network only (host candidates). Also stops streamlit-webrtc
#: from looking up public STUN/TURN servers itself (it does so when ``iceServers`` is unset).
RTC_CONFIGURATION: dict[str, Any] = {"iceServers": []}
MEDIA_CONSTRAINTS: dict[str, Any] = {"video": True, "audio": False}

Boxes = np.ndarray  # (N, 4) float32 xyxy in full-frame pixels
Detect = Callable[[np.ndarray], Boxes]
OnFrame = Callable[[np.ndarray, Boxes], None]


class FrameSkipper:
    """Says which frames get a (slow) detection: the first, then every ``every``-th.

    ``every`` adapts to the measured detection time when ``budget_ms`` is set: a detection
    that took ``t`` ms is spread over ``ceil(t / budget_ms)`` frames (at least ``every_min``,
    at most ``every_max``), so the average time per frame stays near the budget.
    """

    def __init__(self, every: int = 3, *, budget_ms: float | None = None, every_min: int = 1,
                 every_max: int = 15) -> None:
        if every < 1 or every_min < 1 or every_max < every_min:
            raise ValueError("every, every_min must be >= 1 and every_max >= every_min")
        self.every = every
        self.budget_ms = budget_ms
        self.every_min, self.every_max = every_min, every_max
        self._count = 0

    def should_detect(self) -> bool:
        hit = self._count % self.every == 0
        self._count += 1
        return hit

    def record(self, detect_ms: float) -> None:
        """Adapt ``every`` to how long the last detection took (no-op without a budget)."""
        if self.budget_ms is None or self.budget_ms <= 0:
            return
        want = int(np.ceil(detect_ms / self.budget_ms))
        self.every = int(min(self.every_max, max(self.every_min, want)))


@dataclass(frozen=True)
class Grab:
    """One frame taken from the stream: the raw BGR image (a private copy) and its face boxes."""

    image: np.ndarray
    boxes: Boxes
    at: float  # time.monotonic() of the frame
    seq: int  # frames seen so far when it was stored

    @property
    def n_faces(self) -> int:
        return len(self.boxes)


class LatestFrame:
    """Thread-safe holder of the most recent frame and its boxes (writer: the WebRTC thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grab: Grab | None = None
        self._seq = 0

    def put(self, image: np.ndarray, boxes: Boxes) -> None:
        with self._lock:
            self._seq += 1
            self._grab = Grab(image, np.asarray(boxes, np.float32).reshape(-1, 4), time.monotonic(), self._seq)

    def get(self) -> Grab | None:
        """The latest frame, copied so the caller may keep or modify it; None before the first frame."""
        with self._lock:
            g = self._grab
        if g is None:
            return None
        return Grab(g.image.copy(), g.boxes.copy(), g.at, g.seq)

    @property
    def frames_seen(self) -> int:
        with self._lock:
            return self._seq

    def clear(self) -> None:
        with self._lock:
            self._grab = None


def draw_faces(image: np.ndarray, boxes: Boxes, *, min_face_px: float = 0) -> np.ndarray:
    """Copy of ``image`` with each face box labelled by its size in px (the shorter side).

    Green when at least ``min_face_px``, orange when smaller (too small to enroll well).
    """
    out = image.copy()
    for b in np.asarray(boxes, np.float32).reshape(-1, 4):
        px = float(min(b[2] - b[0], b[3] - b[1]))
        box_on(out, b, GREEN if px >= min_face_px else ORANGE, f"{px:.0f}px")
    return out


def downscaled_detector(detect: Detect, max_side: int = 480) -> Detect:
    """Wrap ``detect`` so it runs on a copy no larger than ``max_side``; boxes come back in full-frame px."""
    def run(image: np.ndarray) -> Boxes:
        h, w = image.shape[:2]
        s = min(1.0, max_side / max(h, w))
        small = image if s >= 1 else cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                                                 interpolation=cv2.INTER_AREA)
        boxes = np.asarray(detect(small), np.float32).reshape(-1, 4)
        return boxes / s if s < 1 else boxes
    return run


def pipeline_detector(pipeline: Any, max_side: int = 480) -> Detect:
    """The pipeline's face detector (whole frame, its confidence and minimum size), on a downscaled copy.

    The minimum face size is checked in full-frame pixels, after scaling the boxes back.
    """
    cfg = pipeline.config

    def detect(small: np.ndarray) -> Boxes:
        return pipeline.face_detector.detect(small, conf_threshold=cfg.face_conf).xyxy

    scaled = downscaled_detector(detect, max_side)

    def run(image: np.ndarray) -> Boxes:
        boxes = scaled(image)
        keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= cfg.min_face_px
        return boxes[keep]
    return run


class LiveFaceProcessor:
    """Per-frame work of the live preview: detect (sometimes), remember, draw. Thread-safe enough for
    one WebRTC worker thread writing and the page reading ``latest``."""

    def __init__(self, detect: Detect, *, skipper: FrameSkipper | None = None, min_face_px: float = 0,
                 on_frame: OnFrame | None = None) -> None:
        self.detect = detect
        self.skipper = skipper or FrameSkipper(3, budget_ms=50.0, every_min=2)
        self.min_face_px = min_face_px
        self.on_frame = on_frame
        self.latest = LatestFrame()
        self.boxes: Boxes = np.zeros((0, 4), np.float32)
        self.last_detect_ms = 0.0
        self.last_error: str | None = None
        self._lock = threading.Lock()  # one frame at a time (detector sessions are not re-entrant)

    def process(self, image: np.ndarray) -> np.ndarray:
        """BGR frame in, annotated BGR frame out; the raw frame and its boxes go to ``latest``."""
        with self._lock:
            if self.skipper.should_detect():
                t0 = time.perf_counter()
                try:
                    self.boxes = np.asarray(self.detect(image), np.float32).reshape(-1, 4)
                    self.last_error = None
                except Exception as exc:  # noqa: BLE001 - a failing frame must not kill the stream
                    self.boxes = np.zeros((0, 4), np.float32)
                    self.last_error = f"{type(exc).__name__}: {exc}"
                self.last_detect_ms = (time.perf_counter() - t0) * 1000
                self.skipper.record(self.last_detect_ms)
            boxes = self.boxes
        self.latest.put(image, boxes)
        if self.on_frame is not None:
            self.on_frame(image, boxes)
        return draw_faces(image, boxes, min_face_px=self.min_face_px)


def live_face_preview(key: str, pipeline: Any, *, on_frame: OnFrame | None = None,
                      max_side: int = 480) -> tuple[Any, LiveFaceProcessor]:
    """Render the live webcam (streamlit-webrtc) with face boxes; returns (webrtc context, processor).

    ``processor.latest.get()`` is the current raw frame (BGR) and its boxes, or None before the
    first frame arrived. The processor lives in ``st.session_state`` under ``key`` + "_proc", so a
    rerun (e.g. a button click) keeps the stream and its latest frame. ``on_frame(image, boxes)``
    runs in the WebRTC thread for each frame: keep it quick and do not call Streamlit from it.
    """
    import av
    import streamlit as st
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    state_key = f"{key}_proc"
    proc = st.session_state.get(state_key)
    if not isinstance(proc, LiveFaceProcessor) or getattr(proc, "_pipeline_id", None) != id(pipeline):
        proc = LiveFaceProcessor(pipeline_detector(pipeline, max_side), min_face_px=pipeline.config.min_face_px)
        proc._pipeline_id = id(pipeline)  # type: ignore[attr-defined]
        st.session_state[state_key] = proc
    proc.on_frame = on_frame

    def callback(frame: av.VideoFrame) -> av.VideoFrame:
        out = proc.process(frame.to_ndarray(format="bgr24"))
        return av.VideoFrame.from_ndarray(out, format="bgr24")

    ctx = webrtc_streamer(key=key, mode=WebRtcMode.SENDRECV, rtc_configuration=RTC_CONFIGURATION,
                          media_stream_constraints=MEDIA_CONSTRAINTS, video_frame_callback=callback,
                          async_processing=True)
    return ctx, proc


def frame_upload(grab: Grab, name: str = "live_webcam.jpg", quality: int = 95) -> tuple[str, bytes]:
    """A grabbed frame as an upload ``(name, JPEG bytes)``: the same input ``st.camera_input`` gives."""
    return name, jpeg_bytes(grab.image, quality)


def live_capture(pipeline: Any, *, key: str) -> tuple[str, bytes] | None:
    """Live preview + "Capture this frame" button; the captured frame as ``(name, JPEG bytes)``, else None."""
    import streamlit as st

    st.caption("Start the camera, face the lens; green boxes are faces big enough to enroll (size in px). "
               "Capture when the box is green and steady.")
    ctx, proc = live_face_preview(key, pipeline)
    playing = bool(getattr(ctx.state, "playing", False))
    clicked = st.button("Capture this frame", type="primary", key=f"{key}_capture",
                        help="Enrolls the current video frame (same checks as a photo)")
    if not clicked:
        return None
    grab = proc.latest.get()
    if grab is None or not playing:
        st.warning("No video frame yet: press START, allow the camera and wait for the picture.")
        return None
    return frame_upload(grab)
