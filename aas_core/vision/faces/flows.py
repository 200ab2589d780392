"""The two ways the pipeline finds faces in a classroom frame.

A face detector run once on a 1920x1080 frame shrinks it to its network size (640 px wide
for SCRFD), so a student's 30 px face at the back becomes 10 px and is missed. Both flows
show the detector more pixels per face:

(a) :func:`detect_faces_in_persons` — the seed flow. A person detector (cheap, robust to
    small people) finds bodies; each body box is expanded, cropped, upscaled if small and
    searched for faces. Faces come back in frame coordinates with ``source == "person"``.
(b) :func:`detect_faces_tiled` — SAHI-style slicing: one full-frame pass for large faces
    plus overlapping ``tile`` x ``tile`` windows at native resolution for small ones
    (``source`` = ``"frame"`` / ``"tile"``). No person detector needed; more passes.

Either way, faces cut by an inner crop/tile edge are dropped (another window sees them
whole), a face seen by several windows is merged into its best-scoring copy
(:func:`aas_core.vision.nms.merge_duplicates`), and faces whose shorter side is under
``min_face_px`` (too small to recognise) are dropped.

For SCRFD a third option is a single pass at a larger network size
(``ScrfdFaceDetector(input_size=(1280, 736))``): on the 1920x1080 test canvas of 32-60 px
faces it finds 31/32 in ~70 ms versus 32/32 in ~450 ms tiled, 7/32 at 640x640.
"""

from __future__ import annotations

import cv2
import numpy as np

from aas_core.vision._backend_utils import check_bgr_image, check_threshold
from aas_core.vision.nms import clip_boxes, filter_min_size, merge_duplicates
from aas_core.vision.types import SOURCE_FRAME, SOURCE_PERSON, SOURCE_TILE, Detections, FaceDetector


def _defaults(conf: float | None, min_face_px: float | None) -> tuple[float, float]:
    if conf is None or min_face_px is None:
        from aas_core.config import get_settings

        s = get_settings()
        conf = s.face_conf if conf is None else conf
        min_face_px = s.min_face_px if min_face_px is None else min_face_px
    if min_face_px < 0:
        raise ValueError(f"min_face_px must be >= 0, got {min_face_px}")
    return check_threshold(conf, "conf"), float(min_face_px)


def expand_boxes(xyxy: np.ndarray, ratio: float, width: int, height: int) -> np.ndarray:
    """Grow boxes by ``ratio`` of their width/height on every side, clip, round to int pixels.

    Person boxes are tight around the body; a raised hand, a tilted head or a box cut at the
    hairline would otherwise put part of the face outside the crop.
    """
    if ratio < 0:
        raise ValueError(f"expand must be >= 0, got {ratio}")
    b = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    pad = np.concatenate([b[:, 2:] - b[:, :2]] * 2, axis=1) * ratio * np.array([-1, -1, 1, 1], np.float32)
    out = b + pad
    out = np.stack(
        [np.floor(out[:, 0]), np.floor(out[:, 1]), np.ceil(out[:, 2]), np.ceil(out[:, 3])], axis=1
    ).astype(np.int64)
    return np.clip(out, 0, np.array([width, height, width, height]))


def drop_cut_faces(
    faces: Detections, window: np.ndarray, width: int, height: int, max_size: float = np.inf
) -> Detections:
    """Drop faces (frame coordinates) that touch an edge of ``window`` lying inside the frame.

    A face cut by a crop or tile border gives a partial box whose IoU with the whole face is
    low (~0.3), so NMS would keep both. The whole face is seen by another window: the
    neighbour's person crop, or the overlapping tile. Only faces no larger than ``max_size``
    are dropped (for tiles without a full-frame pass: the overlap width, the size guaranteed
    to fit whole in a neighbour); edges on the frame border never count — nothing else sees past them. "Touch" allows
    2 px + 10 % of the face's size: detectors often end a cut face's box just short of the edge.
    """
    if len(faces) == 0:
        return faces
    x0, y0, x1, y1 = (float(v) for v in window)
    b = faces.xyxy
    margin = 2.0 + 0.1 * np.minimum(faces.widths, faces.heights)
    cut = np.zeros(len(faces), dtype=bool)
    if x0 > 0:
        cut |= b[:, 0] <= x0 + margin
    if y0 > 0:
        cut |= b[:, 1] <= y0 + margin
    if x1 < width:
        cut |= b[:, 2] >= x1 - margin
    if y1 < height:
        cut |= b[:, 3] >= y1 - margin
    small = np.maximum(faces.widths, faces.heights) <= max_size
    return faces[np.flatnonzero(~(cut & small))]


def detect_faces_in_persons(
    image: np.ndarray,
    persons: Detections,
    face_detector: FaceDetector,
    expand: float = 0.15,
    conf: float | None = None,
    min_face_px: float | None = None,
    *,
    min_crop_px: int = 320,
    max_upscale: float = 4.0,
    merge_iou: float = 0.4,
) -> Detections:
    """Faces found inside (expanded) person boxes, in frame coordinates, ``source="person"``.

    Crops whose longer side is under ``min_crop_px`` are upscaled (up to ``max_upscale``x)
    before detection: backends that run at the input's own resolution (YuNet, dlib) need
    the face to cover enough pixels, and SCRFD's letterbox would do the same anyway.
    Faces cut by a crop edge (a neighbour's face at the border of an expanded crop) are
    dropped; the neighbour's own crop sees them whole.
    ``conf``/``min_face_px`` default to the ``face_conf``/``min_face_px`` settings.
    """
    img = check_bgr_image(image)
    if not isinstance(persons, Detections):
        raise ValueError(f"persons must be a Detections, got {type(persons).__name__}")
    conf, min_px = _defaults(conf, min_face_px)
    if max_upscale < 1:
        raise ValueError(f"max_upscale must be >= 1, got {max_upscale}")
    h, w = img.shape[:2]
    parts: list[Detections] = []
    for x0, y0, x1, y1 in expand_boxes(persons.xyxy, expand, w, h):
        cw, ch = int(x1 - x0), int(y1 - y0)
        if cw < 2 or ch < 2:
            continue
        crop = img[y0:y1, x0:x1]
        scale = float(np.clip(min_crop_px / max(cw, ch), 1.0, max_upscale))
        if scale > 1.0:
            crop = cv2.resize(crop, (round(cw * scale), round(ch * scale)), interpolation=cv2.INTER_LINEAR)
            scale = crop.shape[1] / cw  # the exact factor after rounding
        faces = face_detector.detect(crop, conf)
        if len(faces):
            faces = faces.shifted(float(x0), float(y0), scale).with_source(SOURCE_PERSON)
            parts.append(drop_cut_faces(faces, np.array([x0, y0, x1, y1]), w, h))
    found = filter_min_size(clip_boxes(Detections.concat(parts), w, h), min_px)
    return merge_duplicates(found, iou=merge_iou)


def tile_windows(width: int, height: int, tile: int = 640, overlap: float = 0.25) -> np.ndarray:
    """(K, 4) int xyxy windows of ``tile`` px covering the image, neighbours overlapping.

    The last window in each row/column is aligned to the image edge (not padded), so every
    window is full-size whenever the image is at least ``tile`` px on that axis.
    """
    if tile < 32:
        raise ValueError(f"tile must be >= 32 px, got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    stride = max(1, int(round(tile * (1.0 - overlap))))

    def starts(n: int) -> np.ndarray:
        if n <= tile:
            return np.zeros(1, np.int64)
        return np.unique(np.append(np.arange(0, n - tile, stride), n - tile))

    ys, xs = np.meshgrid(starts(height), starts(width), indexing="ij")
    x0, y0 = xs.ravel(), ys.ravel()
    return np.stack([x0, y0, np.minimum(x0 + tile, width), np.minimum(y0 + tile, height)], axis=1)


def detect_faces_tiled(
    image: np.ndarray,
    face_detector: FaceDetector,
    tile: int = 640,
    overlap: float = 0.25,
    conf: float | None = None,
    include_full_frame: bool = True,
    min_face_px: float | None = None,
    *,
    merge_iou: float = 0.4,
) -> Detections:
    """Faces from a full-frame pass plus overlapping tiles, merged, in frame coordinates.

    With SCRFD at 640x640 and ``tile=640``, tiles run at native resolution, which is what
    finds ~30 px faces in a 1920x1080 frame (4x2 tiles + the full frame = 9 passes at 25 %
    overlap; see ``tile_windows``). ``source`` is ``"frame"`` for faces whose best copy came
    from the full-frame pass, ``"tile"`` otherwise.
    """
    img = check_bgr_image(image)
    conf, min_px = _defaults(conf, min_face_px)
    h, w = img.shape[:2]
    windows = tile_windows(w, h, tile, overlap)
    single = len(windows) == 1 and tuple(windows[0]) == (0, 0, w, h)
    parts: list[Detections] = []
    if include_full_frame or single:
        parts.append(face_detector.detect(img, conf).with_source(SOURCE_FRAME))
    if not single:
        # Faces cut by an inner tile edge: those no larger than the overlap strip are whole in
        # a neighbouring tile; larger ones are the full-frame pass's job when there is one.
        # Dropping them matters: a tile scores half a big face *higher* than the full-frame
        # pass scores the whole face (measured on obama_biden_stage.jpg: 0.95 vs 0.947).
        seam = tile - max(1, int(round(tile * (1.0 - overlap))))
        max_cut = np.inf if include_full_frame else seam
        for win in windows:
            x0, y0, x1, y1 = (int(v) for v in win)
            faces = face_detector.detect(img[y0:y1, x0:x1], conf)
            if len(faces):
                faces = faces.shifted(float(x0), float(y0)).with_source(SOURCE_TILE)
                parts.append(drop_cut_faces(faces, win, w, h, max_size=max_cut))
    found = filter_min_size(clip_boxes(Detections.concat(parts), w, h), min_px)
    return merge_duplicates(found, iou=merge_iou)
