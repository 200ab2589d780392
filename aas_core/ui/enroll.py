"""Enrollment glue for the Students page: uploads -> images -> ``services.students.enroll_photos`` -> results.

Uploads are decoded one at a time, as ``enroll_photos`` asks for the next photo
(``iter_uploads``, a generator): ten 50 MP photos decoded up front held 2 GB. One upload is
capped in files (``Settings.max_upload_files``) and in decoded pixels
(``Settings.max_upload_pixels``); what is skipped, undecodable (``media.decode.decode_image``:
format, header pixel check) or oddly shaped gets a rejected result with the reason, never an
exception on the page, and never costs the other photos. Videos are sampled with
``aas_core.media.video``. Results are small dicts (thumbnail JPEG bytes + figures) so they can
live in ``st.session_state`` across reruns.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from aas_core.media.draw import GREEN, ORANGE, RED, draw_box, jpeg_bytes

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
    """(name, BGR image) for every decodable upload; the others as rejected results.

    Decodes everything at once: for a handful of classroom snapshots (Live session page).
    Enrollment uploads go through :func:`iter_uploads` instead.
    """
    ok, bad = [], []
    for name, data in files:
        try:
            ok.append((name, decode_image(data, name=name, max_pixels=settings.max_image_pixels,
                                          max_bytes=settings.max_upload_bytes)))
        except ImageError as exc:
            bad.append(EnrollResult(name, False, [str(exc).removeprefix(f"{name}: ")]))
    return ok, bad


def iter_uploads(files: Iterable[tuple[str, bytes]],
                 settings: Settings) -> Iterator[tuple[str, np.ndarray | ImageError]]:
    """(name, BGR image or the ``ImageError`` saying why not) per upload, decoded only when asked for.

    Files after the first ``max_upload_files`` and photos that would take the upload past
    ``max_upload_pixels`` decoded pixels are skipped (the pixel count is read from the file
    header by ``decode_image`` before anything is decoded).
    """
    budget, used = settings.max_upload_pixels, 0
    for i, (name, data) in enumerate(files):
        if i >= settings.max_upload_files:
            yield name, ImageError(f"skipped: at most {settings.max_upload_files} photos per upload; "
                                   "enroll the rest in another upload", "file_too_large")
            continue
        left = budget - used
        try:
            image = decode_image(data, name=name, max_pixels=min(settings.max_image_pixels, left),
                                 max_bytes=settings.max_upload_bytes)
        except ImageError as exc:
            w_h = exc.size
            if exc.problem == "too_many_pixels" and w_h and w_h[0] * w_h[1] <= settings.max_image_pixels:
                # Fine on its own; only the upload's total is over: say so, not "too large".
                exc = ImageError(f"skipped: {w_h[0]}x{w_h[1]} pixels would take this upload past its "
                                 f"{budget / 1e6:.0f} MP limit ({used / 1e6:.0f} MP used); enroll it in another "
                                 "upload", "too_many_pixels", w_h)
            yield name, exc
            continue
        used += image.shape[0] * image.shape[1]
        yield name, image
        del image  # not kept alive here while the caller works on the next one


THUMB = 360
THUMB = 360


def _result(outcome: SampleOutcome, image: np.ndarray | Exception) -> EnrollResult:
    thumb = None
    if isinstance(image, np.ndarray):
        # Draw at thumbnail scale (small photos upscaled first) so box and label look the same on every photo.
        h, w = image.shape[:2]
        scale = THUMB / max(h, w)
        # At least 1 px a side: a 50000 x 8 strip scales to 0 px high and cv2.resize would raise.
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        shown = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        if outcome.box is not None:
            color = GREEN if outcome.accepted else (ORANGE if outcome.pending else RED)
            shown = draw_box(shown, [v * scale for v in outcome.box], color,
                             f"{outcome.figures.get('face_px', 0):.0f}px" if outcome.figures else None, thickness=2)
        thumb = jpeg_bytes(shown)
    return EnrollResult(outcome.name, outcome.accepted, list(outcome.reasons), list(outcome.warnings),
                        {k: float(v) for k, v in outcome.figures.items()}, outcome.box, outcome.sample_id,
                        outcome.status, thumb=thumb)


def enroll(url: str, user: AuthUser, student_number: str, images: Iterable[tuple[str, np.ndarray | Exception]],
           pipeline: Any, store: ImageStore, settings: Settings, *, source: str, total: int | None = None,
           progress: Callable[[int, int, str], None] | None = None) -> list[EnrollResult]:
    """Enroll images one by one (progress callback after each), all in one transaction, through the
    access-checked ``services.students.enroll_photos``; results with thumbnails for the page.

    ``images`` may be :func:`iter_uploads`: each thumbnail is made while its photo is the one
    decoded photo alive, and an item that is an exception becomes a rejected result.
    """
    from aas_core.services.students import enroll_photos

    results: list[EnrollResult] = []
    enroll_photos(url, user, student_number, images, pipeline, store, settings, source=source, progress=progress,
                  total=total, each=lambda outcome, image: results.append(_result(outcome, image)))
    return results


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
