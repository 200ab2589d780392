"""A "camera" that returns given images in turn: uploaded photos, demos and tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import DEFAULT_MAX_PIXELS, CameraError, check_frame, decode_image

ImageSource = str | Path | bytes | np.ndarray


class ImageSequenceCamera:
    """Each ``grab`` returns the next image (a copy, so callers may draw on it).

    Images are decoded up front: an unreadable upload is reported when the instructor
    submits it, not minutes later when its snapshot is due. ``loop=True`` starts again
    after the last image; otherwise running out raises ``CameraError``.

    ``light`` only records the requested state (``light_on``, ``light_events``) so a demo
    or test can check the on/off protocol; ``has_light`` says whether the runner should
    bother (default False: there is no real light).
    """

    def __init__(
        self,
        images: Sequence[ImageSource],
        *,
        loop: bool = True,
        name: str = "images",
        has_light: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if len(images) == 0:
            raise ValueError("ImageSequenceCamera needs at least one image")
        self.name = name
        self.has_light = has_light
        self.loop = loop
        self._frames = [self._load(src, i, max_pixels) for i, src in enumerate(images)]
        self._next = 0
        self._lock = threading.Lock()
        self.light_on = False
        self.light_events: list[bool] = []
        self.closed = False

    @staticmethod
    def _load(src: ImageSource, index: int, max_pixels: int) -> np.ndarray:
        if isinstance(src, np.ndarray):
            return check_frame(src, f"image #{index}").copy()
        if isinstance(src, bytes):
            return decode_image(src, f"image #{index}", max_pixels)
        path = Path(src)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CameraError(f"image #{index} ({path.name}): cannot read file: {exc.strerror}") from exc
        return decode_image(data, f"image #{index} ({path.name})", max_pixels)

    def __len__(self) -> int:
        return len(self._frames)

    def grab(self) -> np.ndarray:
        if self.closed:
            raise CameraError(f"{self.name}: camera is closed")
        with self._lock:
            if self._next >= len(self._frames):
                if not self.loop:
                    raise CameraError(f"{self.name}: no more images ({len(self._frames)} given)")
                self._next = 0
            frame = self._frames[self._next]
            self._next += 1
        return frame.copy()

    def light(self, on: bool) -> None:
        self.light_on = on
        self.light_events.append(on)

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"ImageSequenceCamera(name={self.name!r}, images={len(self._frames)}, loop={self.loop})"
