"""Enrollment glue for the Students page: uploads -> images -> ``services.students.enroll_photos`` -> results.

Decoding goes through ``imageio.decode_image`` (an undecodable upload becomes a rejected
result with the reason, never an exception on the page); videos are sampled with
``aas_core.media.video``. Results are small dicts (thumbnail JPEG bytes + figures) so they can
live in ``st.session_state`` across reruns.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aas_core.config import Settings
from aas_core.media.decode import ImageError, decode_image
from aas_core.media.store import ImageStore
from aas_core.services.auth import AuthUser
from aas_core.services.enrollment import SampleOutcome
from aas_core.media.draw import GREEN, RED, draw_box, jpeg_bytes

VIDEO_TYPES = ["mp4", "mov", "avi", "webm", "mkv", "m4v"]
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]


@dataclass
class EnrollResult(SampleOutcome):
    """A quality-gate outcome with the thumbnail the Students page shows."""

    thumb: bytes | None = None  # JPEG, face box drawn

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decode_uploads(files: Sequence[tuple[str, bytes]],
                   settings: Settings) -> tuple[list[tuple[str, np.ndarray]], list[EnrollResult]]:
    """(name, BGR image) for every decodable upload; the others as rejected results."""
    ok, bad = [], []
    for name, data in files:
        try:
            ok.append((name, decode_image(data, name=name, max_pixels=settings.max_image_pixels,
                                          max_bytes=settings.max_upload_bytes)))
        except ImageError as exc:
            bad.append(EnrollResult(name, False, [str(exc).removeprefix(f"{name}: ")]))
    return ok, bad


THUMB = 360


def _result(outcome: SampleOutcome, image: np.ndarray) -> EnrollResult:
    # Draw at thumbnail scale (small photos upscaled first) so box and label look the same on every photo.
    scale = THUMB / max(image.shape[:2])
    shown = cv2.resize(image, None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if outcome.box is not None:
        shown = draw_box(shown, [v * scale for v in outcome.box], GREEN if outcome.accepted else RED,
                         f"{outcome.figures.get('face_px', 0):.0f}px" if outcome.figures else None, thickness=2)
    return EnrollResult(outcome.name, outcome.accepted, list(outcome.reasons), list(outcome.warnings),
                        {k: float(v) for k, v in outcome.figures.items()}, outcome.box, outcome.sample_id,
                        thumb=jpeg_bytes(shown))


def enroll(url: str, user: AuthUser, student_number: str, images: Sequence[tuple[str, np.ndarray]], pipeline: Any,
           store: ImageStore, settings: Settings, *, source: str,
           progress: Callable[[int, int, str], None] | None = None) -> list[EnrollResult]:
    """Enroll images one by one (progress callback after each), all in one transaction, through the
    access-checked ``services.students.enroll_photos``; results with thumbnails for the page."""
    from aas_core.services.students import enroll_photos

    outcomes = enroll_photos(url, user, student_number, images, pipeline, store, settings, source=source,
                             progress=progress)
    return [_result(outcome, img) for outcome, (_, img) in zip(outcomes, images, strict=True)]


def video_frames(data: bytes, name: str, pipeline: Any, settings: Settings, *, every_s: float = 0.5,
                 max_frames: int = 24, keep: int = 5) -> tuple[list[tuple[str, np.ndarray]], int]:
    """The best ``keep`` frames of an uploaded video (``ValueError`` with the reason), and how many were sampled."""
    from aas_core.media.video import best_enrollment_frames, sample_video_frames

    if len(data) > settings.max_upload_bytes:
        raise ValueError(f"{name}: {len(data) / 1e6:.0f} MB is larger than the "
                         f"{settings.max_upload_bytes / 1e6:.0f} MB limit; upload a few seconds only")
    suffix = Path(name).suffix.lower() or ".mp4"
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            frames = sample_video_frames(tmp.name, every_s=every_s, max_frames=max_frames,
                                         max_pixels=settings.max_image_pixels)
        except ValueError as exc:  # name the upload, not the temp file
            raise ValueError(str(exc).replace(Path(tmp.name).name, name)) from None
    stem = Path(name).stem
    best = best_enrollment_frames(frames, pipeline, settings, k=keep, name=stem)
    return best, len(frames)
