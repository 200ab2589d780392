"""Enrollment from a short video: sample frames, keep the best few for ``enroll_images``.

A student (or an instructor with a phone) films a few seconds turning the head slightly;
:func:`sample_video_frames` takes one frame every ``every_s`` seconds and
:func:`best_enrollment_frames` keeps the frames whose face passes the enrollment quality
gate, best first. Both raise ``ValueError`` with a message a person can act on when the
file is not a video, no frame decodes, or no frame is usable, so the caller never stores
anything for such a video.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from aas_core.media.decode import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:  # the pipeline is only needed by best_enrollment_frames
    from aas_core.config import Settings
    from aas_core.vision.pipeline import Pipeline

#: Frames whose grey-level standard deviation is below this are blank (lens cap, black frame).
BLANK_STD = 3.0


def _is_blank(frame: np.ndarray) -> bool:
    small = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA) if min(frame.shape[:2]) > 64 else frame
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return float(gray.std()) < BLANK_STD


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        frame = cv2.normalize(frame, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(frame)


def sample_video_frames(path: str | Path, every_s: float = 0.5, max_frames: int = 20, *,
                        max_pixels: int = DEFAULT_MAX_PIXELS, skip_blank: bool = True) -> list[np.ndarray]:
    """One BGR uint8 frame every ``every_s`` seconds of the video at ``path``, at most ``max_frames``.

    Blank frames (uniform colour) are skipped when ``skip_blank``. Raises ``ValueError``
    naming the file when it cannot be opened as a video, when no frame decodes, when the
    frames are larger than ``max_pixels``, or when every sampled frame is blank.
    """
    p = Path(path)
    if every_s <= 0:
        raise ValueError("every_s must be > 0")
    if max_frames < 1:
        raise ValueError("max_frames must be >= 1")
    if not p.is_file():
        raise ValueError(f"{p.name}: video file not found")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise ValueError(f"{p.name}: not a readable video file (or an unsupported format)")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > max_pixels:
            raise ValueError(f"{p.name}: {w}x{h} video frames are larger than the {max_pixels / 1e6:.0f} MP limit")
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if np.isfinite(fps) and 0 < fps < 1000 else 25.0
        step = max(1, int(round(every_s * fps)))
        frames: list[np.ndarray] = []
        decoded = blank = 0
        idx = 0
        # grab() is cheap (no decode); retrieve() only the frames we keep. A hard cap on the
        # frames read keeps a broken or endless stream from looping forever.
        limit = step * max_frames * 4 + 1000
        while len(frames) < max_frames and idx < limit:
            if not cap.grab():
                break
            if idx % step == 0:
                ok, frame = cap.retrieve()
                if ok and frame is not None and frame.size:
                    decoded += 1
                    if frame.shape[0] * frame.shape[1] > max_pixels:
                        raise ValueError(f"{p.name}: video frames are larger than the {max_pixels / 1e6:.0f} MP limit")
                    frame = _to_bgr(frame)
                    if skip_blank and _is_blank(frame):
                        blank += 1
                    else:
                        frames.append(frame)
            idx += 1
    finally:
        cap.release()
    if decoded == 0:
        raise ValueError(f"{p.name}: no frame could be decoded (empty, truncated or not a video)")
    if not frames:
        raise ValueError(f"{p.name}: no usable frame: all {blank} sampled frames are blank")
    return frames


def best_enrollment_frames(frames: Sequence[np.ndarray], pipeline: Pipeline, settings: Settings, k: int = 5, *,
                           name: str = "video") -> list[tuple[str, np.ndarray]]:
    """The ``k`` frames whose face passes the enrollment quality gate, best first.

    Frames are ranked by face size x sharpness x detector score; near-duplicates of an
    already chosen frame are skipped so the samples differ a little (pose, expression).
    Returns ``(name#frame, image)`` pairs ready for ``enroll_images``. Raises ``ValueError``
    with the most common rejection reason when no frame is usable.
    """
    from aas_core.services.enrollment import assess_and_embed

    if not frames:
        raise ValueError(f"{name}: no frames to choose from")
    scored: list[tuple[float, int, np.ndarray]] = []
    reasons: dict[str, int] = {}
    for i, frame in enumerate(frames):
        outcome, emb = assess_and_embed(frame, f"{name}#{i}", pipeline, settings)
        if not outcome.accepted or emb is None:
            for r in outcome.reasons or ["rejected"]:
                reasons[r] = reasons.get(r, 0) + 1
            continue
        f = outcome.figures
        score = float(f.get("face_px", 1.0)) * float(np.log1p(f.get("blur", 1.0))) * float(f.get("det_score", 1.0))
        scored.append((score, i, np.asarray(emb, np.float32)))
    if not scored:
        common = max(reasons, key=lambda r: reasons[r]) if reasons else "no face found"
        raise ValueError(f"{name}: no usable frame among {len(frames)} sampled frames ({common})")
    scored.sort(key=lambda t: -t[0])
    chosen: list[tuple[int, np.ndarray]] = []
    for _, i, emb in scored:
        if all(float(emb @ e) < 0.985 for _, e in chosen):  # skip near-identical frames
            chosen.append((i, emb))
        if len(chosen) == k:
            break
    return [(f"{name}#{i}", frames[i]) for i, _ in chosen]
