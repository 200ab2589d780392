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

(c) :func:`detect_faces_scheduled` — the detection schedule (the ``fast`` profile): pixels
    are spent where faces are small. One whole-frame pass at the scale that maps the
    smallest face that must be found (``find_face_px``) onto the detector's own lower limit
    (``det_min_px``, ~12 px for SCRFD), then full-width strips re-run at a finer scale only
    around rows whose faces the coarse pass saw at that limit (where smaller ones may be
    missed) and around configured back-row bands. See docs/EVALUATION.md#detection-schedule.

For SCRFD a single pass at a larger network size (``ScrfdFaceDetector(input_size=(1280,
736))``) is what InsightFace's FaceAnalysis does: on the 1920x1080 test canvas of 32-60 px
faces it finds 31/32 in ~70 ms versus 32/32 in ~450 ms tiled, 7/32 at 640x640.
"""

from __future__ import annotations

import cv2
import numpy as np

from aas_core.vision._backend_utils import check_bgr_image, check_threshold
from aas_core.vision.nms import box_iou, clip_boxes, filter_min_size, merge_duplicates
from aas_core.vision.types import SOURCE_FRAME, SOURCE_PERSON, SOURCE_TILE, Detections, FaceDetector

#: Smallest face (shorter side, network pixels) SCRFD 2.5g finds reliably: measured on
#: synthetic classrooms, faces of 11.4-12.6 px at network scale 36/36 found, 9.6-10 px missed.
DETECTOR_MIN_PX = 12.0


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


def detect_at_scale(detector: FaceDetector, image: np.ndarray, scale: float, conf: float) -> Detections:
    """One detector pass on ``image`` resized by ``scale``; boxes in ``image`` pixels.

    SCRFD's :meth:`~aas_core.vision.faces.scrfd.ScrfdFaceDetector.detect_scaled` runs at
    exactly that scale (no letterbox into a fixed square); other backends get the resized
    image, which is right for those that run at the input's own resolution (YuNet, dlib).
    """
    fn = getattr(detector, "detect_scaled", None)
    if callable(fn):
        return fn(image, scale, conf)
    h, w = image.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) == (w, h):
        return detector.detect(image, conf)
    from aas_core.vision._backend_utils import cv2_resize

    found = detector.detect(cv2_resize(image, (nw, nh)), conf)
    if not len(found):
        return found
    sx, sy = nw / w, nh / h
    lms = None if found.landmarks is None else found.landmarks / np.array([sx, sy], np.float32)
    return Detections(found.xyxy / np.array([sx, sy, sx, sy], np.float32), found.confidence, lms, found.source)


def schedule_scale(height: int, find_face_px: float, det_min_px: float = DETECTOR_MIN_PX,
                   reference_height: int | None = 1080) -> float:
    """Whole-frame scale at which a face of ``find_face_px`` becomes ``det_min_px`` (capped at 1).

    ``find_face_px`` is given for a ``reference_height``-line frame (1080: the same field of
    view filmed in 4K shows every face twice as big, so 20 px at 1080p means 40 px at 2160p);
    ``reference_height=None`` takes it in the frame's own pixels.
    """
    if find_face_px <= 0 or det_min_px <= 0:
        raise ValueError(f"find_face_px and det_min_px must be > 0, got {find_face_px}, {det_min_px}")
    smallest = find_face_px * (height / reference_height if reference_height else 1.0)
    return float(min(1.0, det_min_px / smallest))


def merge_bands(bands: list[tuple[float, float]], height: int, gap: float = 0.0) -> list[tuple[int, int]]:
    """Union of (y0, y1) bands clipped to [0, height], int pixels; bands closer than ``gap`` join."""
    out: list[list[int]] = []
    for y0, y1 in sorted((max(0, int(np.floor(a))), min(height, int(np.ceil(b)))) for a, b in bands):
        if y1 <= y0:
            continue
        if out and y0 <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], y1)
        else:
            out.append([y0, y1])
    return [(a, b) for a, b in out]


def detect_faces_scheduled(
    image: np.ndarray,
    face_detector: FaceDetector,
    find_face_px: float | None = None,
    conf: float | None = None,
    min_face_px: float | None = None,
    *,
    det_min_px: float = DETECTOR_MIN_PX,
    reference_height: int | None = 1080,
    refine_below: float = 1.25,
    refine_above: float = 6.0,
    refine_factor: float = 1.5,
    back_rows: tuple[tuple[float, float], ...] = (),
    refine_landmarks_px: float = 0.0,
    merge_iou: float = 0.4,
) -> Detections:
    """The detection schedule: a coarse whole-frame pass, then fine strips only where faces are small.

    1. Whole frame at ``s = schedule_scale(h, find_face_px, det_min_px)``: a face of
       ``find_face_px`` (at 1080 lines) reaches the detector's lower limit; larger ones are
       found on the way. 1080p with 20 px faces runs at 0.6 (1152x672), 4K at 0.3 — the
       same cost. ``source="frame"``.
    2. Strips: faces of the coarse pass whose box, at network scale, is under
       ``refine_below`` x ``det_min_px`` (SCRFD's boxes are ~10 % larger than the face, so
       1.25 means "at the limit") say the row holds faces the coarse pass only just finds
       and partly misses. Their rows (plus ``refine_above`` face heights above, where the
       smaller rows behind them sit, and one below), and the configured ``back_rows``
       (fractions of the height, e.g. ``((0.2, 0.45),)``), are run again full width at
       ``min(1, refine_factor * s)``, one inference per strip, ``source="tile"``. The
       defaults were chosen on the scenes of ``benchmarks/detect_schedule.py``: 1.0/2 face
       heights missed one 40 px face at 4K that FaceAnalysis finds; strips to the top of the
       frame or at 2x cost 10-30 % more for no further face.
       A row of faces under ~0.8 ``find_face_px`` that the coarse pass misses entirely, with
       no face at the limit in front of it, is not seen: that is what ``find_face_px`` /
       ``back_rows`` are for.

    3. Landmarks: a face seen at under ``refine_landmarks_px`` px (network scale) is
       detected again in its own small crop (twice its size) at the scale that makes it
       ``refine_landmarks_px`` (native resolution at most), and takes that box, those
       landmarks and that score if higher. Off by default (0): it halves the landmark
       error of a pass at 0.5 (3.4 % -> 1.8 % of the face width) but changed no status on
       the 8 sessions of ``benchmarks/session_accuracy.py`` (231/240 with and without) and
       costs one small inference per face (+42 ms at 1080p, +94 ms at 4K, 36 faces, fp32).

    Faces cut by an inner strip edge are dropped (the coarse pass sees them whole), copies
    merged (:func:`~aas_core.vision.nms.merge_duplicates`), faces under ``min_face_px`` dropped.
    ``find_face_px``/``conf``/``min_face_px`` default to the settings of the same names.
    """
    img = check_bgr_image(image)
    conf, min_px = _defaults(conf, min_face_px)
    if find_face_px is None:
        from aas_core.config import get_settings

        find_face_px = float(get_settings().find_face_px)
    if refine_factor < 1:
        raise ValueError(f"refine_factor must be >= 1, got {refine_factor}")
    h, w = img.shape[:2]
    s = schedule_scale(h, find_face_px, det_min_px, reference_height)
    coarse = detect_at_scale(face_detector, img, s, conf).with_source(SOURCE_FRAME)
    parts = [coarse]
    if s < 1.0:
        bands: list[tuple[float, float]] = [(a * h, b * h) for a, b in back_rows]
        sizes = np.minimum(coarse.widths, coarse.heights)
        for i in np.flatnonzero(sizes * s < refine_below * det_min_px):
            y0, y1 = float(coarse.xyxy[i, 1]), float(coarse.xyxy[i, 3])
            fh = y1 - y0
            bands.append((y0 - refine_above * fh, y1 + fh))
        fine = min(1.0, refine_factor * s)
        for y0, y1 in merge_bands(bands, h, gap=32 / fine):
            faces = detect_at_scale(face_detector, img[y0:y1], fine, conf)
            if len(faces):
                faces = faces.shifted(0.0, float(y0)).with_source(SOURCE_TILE)
                parts.append(drop_cut_faces(faces, np.array([0, y0, w, y1]), w, h))
    found = merge_duplicates(filter_min_size(clip_boxes(Detections.concat(parts), w, h), min_px), iou=merge_iou)
    if refine_landmarks_px > 0 and len(found):
        seen_at = np.where(found.source == SOURCE_FRAME, s, min(1.0, refine_factor * s))
        found = refine_landmarks(img, found, face_detector, seen_at, conf, refine_landmarks_px)
    return found


def refine_landmarks(image: np.ndarray, faces: Detections, face_detector: FaceDetector, seen_at: np.ndarray,
                     conf: float, target_px: float = 64.0) -> Detections:
    """Re-detect faces seen at under ``target_px`` (``size * seen_at``) in their own crop, sharper.

    Each such face's crop (the box grown to twice its size) is run at ``min(1, target_px /
    size)``; the detection overlapping the face most (IoU >= 0.5) replaces its box and
    landmarks, and its score if higher (as the tiled flow keeps the best-scoring copy; the
    face-quality gate reads it); the source is kept. Faces not found again keep their values.
    """
    if not len(faces) or faces.landmarks is None:
        return faces
    h, w = image.shape[:2]
    size = np.maximum(faces.widths, faces.heights)
    xyxy, lms, score = faces.xyxy.copy(), faces.landmarks.copy(), faces.confidence.copy()
    for i in np.flatnonzero(size * seen_at < target_px):
        x0, y0, x1, y1 = (float(v) for v in faces.xyxy[i])
        win = expand_boxes(np.array([[x0, y0, x1, y1]]), 0.5, w, h)[0]
        r = float(min(1.0, target_px / size[i]))
        if r <= seen_at[i] * 1.05:
            continue  # no sharper than what the pass already saw
        cx0, cy0, cx1, cy1 = (int(v) for v in win)
        found = detect_at_scale(face_detector, image[cy0:cy1, cx0:cx1], r, min(conf, 0.3))
        if not len(found) or found.landmarks is None:
            continue
        found = found.shifted(float(cx0), float(cy0))
        iou = box_iou(faces.xyxy[i : i + 1], found.xyxy)[0]
        j = int(np.argmax(iou))
        if iou[j] >= 0.5:
            xyxy[i], lms[i] = found.xyxy[j], found.landmarks[j]
            score[i] = max(score[i], found.confidence[j])
    return Detections(xyxy, score, lms, faces.source)
