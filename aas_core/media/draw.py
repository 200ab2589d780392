"""Annotators in one module: boxes, labelled thumbnails, crop pairs, data-URI thumbnails.

All functions take and return BGR uint8 images (OpenCV order); ``to_rgb`` converts for
``st.image``. No Streamlit import: pure and testable.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from aas_core.vision.pipeline import PipelineResult

# BGR colours
GREY = (160, 160, 160)
GREEN = (60, 180, 60)
ORANGE = (0, 140, 255)
RED = (40, 40, 220)
#: Face boxes by where the detection came from (Inspector).
SOURCE_COLOURS: dict[str, tuple[int, int, int]] = {
    "person": (60, 180, 60),  # green: found inside a person box
    "tile": (235, 120, 30),  # blue: found on a tile of the frame
    "frame": (0, 190, 255),  # amber: found on the whole frame
}
SOURCE_HEX = {"person": "#3cb43c", "tile": "#1e78eb", "frame": "#ffbe00"}
#: Longest side of an annotated image meant only for the screen. ``st.image`` sends at most
#: 1460 px wide: anything wider it JPEG-encodes, decodes, resizes and encodes again; an image
#: drawn at this size is encoded once, and drawing on it is cheaper too.
DISPLAY_MAX_SIDE = 1440


def to_rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])


def line_width(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 700))


def put_label(image: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int],
              scale: float | None = None) -> None:
    """Text on a filled background so it reads on any image."""
    th = line_width(image)
    scale = scale or 0.45 * th
    (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
    y = max(tht + base + 2, y)
    cv2.rectangle(image, (x, y - tht - base - 2), (x + tw + 4, y), colour, -1)
    luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    fg = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y - base - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, fg, th, cv2.LINE_AA)


def box_on(out: np.ndarray, box: Sequence[float], colour: tuple[int, int, int], label: str | None = None,
           thickness: int | None = None) -> None:
    """THE box primitive: draw one (labelled) box onto ``out`` in place; every overlay uses it."""
    th = thickness or line_width(out) + 1
    x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
    cv2.rectangle(out, (x1, y1), (x2, y2), colour, th)
    if label:
        put_label(out, label, x1, y1 - 1, colour)


def draw_box(image: np.ndarray, box: Sequence[float], colour: tuple[int, int, int] = GREEN, label: str | None = None,
             thickness: int | None = None) -> np.ndarray:
    """Copy of ``image`` with one labelled box."""
    out = image.copy()
    box_on(out, box, colour, label, thickness)
    return out


def _persons_on(out: np.ndarray, persons_xyxy: np.ndarray | None) -> None:
    """Person boxes: thin, grey, unlabelled (context for the faces)."""
    if persons_xyxy is not None:
        for b in np.asarray(persons_xyxy).reshape(-1, 4):
            box_on(out, b, GREY, thickness=line_width(out))


def draw_detections(image: np.ndarray, persons_xyxy: np.ndarray | None, faces_xyxy: np.ndarray,
                    sources: Iterable[str] | None = None, labels: Sequence[str | None] | None = None) -> np.ndarray:
    """Persons in grey, faces coloured by source (person/tile/frame), optional labels per face."""
    out = image.copy()
    _persons_on(out, persons_xyxy)
    srcs = list(sources) if sources is not None else []
    for i, b in enumerate(np.asarray(faces_xyxy).reshape(-1, 4)):
        colour = SOURCE_COLOURS.get(srcs[i] if i < len(srcs) else "frame", ORANGE)
        label = labels[i] if labels is not None and i < len(labels) else f"#{i}"
        box_on(out, b, colour, label)
    return out


def draw_observations(image: np.ndarray, boxes: Sequence[Sequence[float]], labels: Sequence[str | None],
                      matched: Sequence[bool], persons_xyxy: np.ndarray | None = None, *,
                      max_side: int | None = None, source_width: int | None = None) -> np.ndarray:
    """Stored face observations: green = recognised (label = student), orange = unknown; persons grey.

    ``max_side``: draw on a copy downscaled to at most that many pixels (:func:`fit`; boxes in
    the coordinates of ``image``), for images only meant for the screen (``DISPLAY_MAX_SIDE``).
    ``source_width``: ``image`` is already a smaller copy of a picture that many pixels wide,
    the one the boxes belong to (``ImageStore.load(rel, max_side=...)``).
    """
    out = fit(image, max_side) if max_side else image
    out = out.copy() if out is image else out
    s = out.shape[1] / (source_width or image.shape[1]) if out.shape[1] else 1.0
    _persons_on(out, None if persons_xyxy is None else np.asarray(persons_xyxy, np.float64) * s)
    for b, lab, ok in zip(boxes, labels, matched):
        box_on(out, [float(v) * s for v in b[:4]], GREEN if ok else ORANGE, lab)
    return out


def draw_result(image: np.ndarray, result: PipelineResult, names: dict[str, str] | None = None, *,
                max_side: int | None = None) -> np.ndarray:
    """A pipeline result: person boxes (grey), faces (green = matched, labelled by ``names``; orange = unknown).

    ``max_side``: as for :func:`draw_observations` (pass ``DISPLAY_MAX_SIDE`` for ``st.image``).
    """
    n = len(result.faces)
    assigned = result.match.assigned if result.match is not None else [None] * n
    labels = [str((names or {}).get(sid, sid)) if sid else f"#{i}" for i, sid in enumerate(assigned)]
    return draw_observations(image, result.faces.xyxy, labels, [bool(sid) for sid in assigned],
                             persons_xyxy=result.persons.xyxy, max_side=max_side)


def fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side`` (never upscales).

    Halvings by ``INTER_AREA`` (OpenCV's fast integer path) while the scale left is at most 1/2,
    then ``INTER_LINEAR`` for the rest: a scale above 1/2 reads at most 2x2 source pixels per
    output pixel, so it does not alias, and a non-integer ``INTER_AREA`` (1920 -> 1440) costs
    ~4x as much for the same picture.
    """
    h, w = image.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return image
    out = image
    while max_side / max(out.shape[:2]) <= 0.5 and min(out.shape[:2]) >= 4:
        hh, ww = out.shape[:2]
        out = cv2.resize(out[:hh - hh % 2, :ww - ww % 2], (ww // 2, hh // 2), interpolation=cv2.INTER_AREA)
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    if out.shape[1] == tw and out.shape[0] == th:
        return out
    interp = cv2.INTER_LINEAR if tw * 2 > out.shape[1] else cv2.INTER_AREA
    return cv2.resize(out, (tw, th), interpolation=interp)


def to_height(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    if h == height:
        return image
    interp = cv2.INTER_AREA if h > height else cv2.INTER_CUBIC
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=interp)


def side_by_side(left: np.ndarray, right: np.ndarray | None, height: int = 128, gap: int = 4) -> np.ndarray:
    """A crop and its enhanced version at the same display height (right may be None)."""
    a = to_height(left, height)
    if right is None:
        return a
    b = to_height(right, height)
    spacer = np.full((height, gap, 3), 255, np.uint8)
    return np.hstack([a, spacer, b])


def grid(images: Sequence[np.ndarray], cols: int = 6, cell: int = 128, labels: Sequence[str] | None = None,
         pad: int = 4) -> np.ndarray:
    """One image holding ``images`` as a grid of ``cell`` px squares (letterboxed), optional labels."""
    if not images:
        return np.full((cell, cell, 3), 255, np.uint8)
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    out = np.full((rows * (cell + pad) + pad, cols * (cell + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        s = cell / max(h, w)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        r, c = divmod(i, cols)
        y0 = pad + r * (cell + pad) + (cell - small.shape[0]) // 2
        x0 = pad + c * (cell + pad) + (cell - small.shape[1]) // 2
        out[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
        if labels and i < len(labels) and labels[i]:
            put_label(out, labels[i], pad + c * (cell + pad), pad + r * (cell + pad) + cell, (40, 40, 40), 0.4)
    return out


#: JPEG quality of images sent to the screen: ``st.image`` re-encodes an array at quality 100
#: (~3x the bytes); a JPEG given as bytes at display size is sent as it is.
DISPLAY_QUALITY = 85


def display_jpeg(image: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> bytes:
    """What ``st.image`` should get for a picture only meant for the screen: at most ``max_side``
    px, JPEG at :data:`DISPLAY_QUALITY`, encoded here once (Streamlit passes such bytes through)."""
    return jpeg_bytes(fit(image, max_side), DISPLAY_QUALITY)


def jpeg_bytes(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode image as JPEG")
    return buf.tobytes()


def data_uri(image: np.ndarray, max_side: int = 96, quality: int = 80) -> str:
    """Small JPEG as a data URI (for ``st.column_config.ImageColumn`` cells)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(fit(image, max_side), quality)).decode("ascii")
