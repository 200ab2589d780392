"""Safe image decoding for everything users upload (photos, snapshots, video frames).

One entry point that turns bytes into a BGR uint8 array or raises ``ImageError`` with a
message a person can act on: non-images, truncated files, decompression bombs, 16-bit,
RGBA, grayscale and EXIF-rotated photos are all handled here and nowhere else.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: The one pixel limit (uploads, camera frames, video frames, ``Settings.max_image_pixels``):
#: a hostile or broken source must not make us allocate gigabytes.
DEFAULT_MAX_PIXELS = 50_000_000
#: Formats decode_image accepts, sniffed from the bytes (never the file name). Everything else
#: is refused before its plugin runs: EPS/PS would hand the upload to Ghostscript, and exotic
#: plugins are attack surface a photo upload does not need. (Multi-picture phone JPEGs, MPO, open as JPEG.)
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")


ImageProblem = Literal["unreadable", "empty", "file_too_large", "too_many_pixels", "not_an_image", "too_large_to_decode",
                       "corrupt", "too_small"]


#: PIL's own ``Image.open``. Ultralytics replaces ``PIL.Image.open`` when it is imported with a
#: wrapper that, for a file PIL cannot identify, pip-installs pi-heif and retries: a network
#: call, and offline a ModuleNotFoundError instead of our ImageError. Whichever was imported
#: first, this is the unwrapped function (ultralytics keeps it as ``_image_open``).
_pil_open = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", Image.open)


class ImageError(ValueError):
    """An upload that is not a usable image; the message says why.

    ``problem`` says the same for code (the camera backends word their own messages from
    it); ``size`` is the (width, height) read from the header when it is known.
    """

    def __init__(self, message: str, problem: ImageProblem, size: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.problem: ImageProblem = problem
        self.size = size


def decode_image(data: bytes, *, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_bytes: int = 60_000_000) -> np.ndarray:
    """Decode an uploaded file to a BGR uint8 image (EXIF orientation applied)."""
    if not data:
        raise ImageError(f"{name}: the file is empty", "empty")
    if len(data) > max_bytes:
        raise ImageError(f"{name}: file is {len(data) / 1e6:.0f} MB, larger than the {max_bytes / 1e6:.0f} MB limit",
                         "file_too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _pil_open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            w, h = img.size
            # Check the header's size before decoding a single pixel: a 40k x 40k PNG is a few KB.
            if w * h > max_pixels:
                raise ImageError(f"{name}: {w}x{h} pixels is larger than the {max_pixels / 1e6:.0f} MP limit",
                                 "too_many_pixels", (w, h))
            img.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError(f"{name}: not an image file (or an unsupported format; use "
                             f"{', '.join(ALLOWED_FORMATS)})", "not_an_image") from None
        raise ImageError(f"{name}: image too large to decode safely", "too_large_to_decode") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: image is truncated or corrupt ({exc.__class__.__name__})", "corrupt") from None
    if w < 8 or h < 8:
        raise ImageError(f"{name}: {w}x{h} pixels is too small to contain a face", "too_small", (w, h))
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF must not lose an otherwise fine photo
        pass
    return pil_to_bgr(img)


def pil_to_bgr(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        gray = arr.astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[..., ::-1])


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p}: cannot read file ({exc.strerror or exc})", "unreadable") from None
    return decode_image(data, name=p.name, max_pixels=max_pixels)
