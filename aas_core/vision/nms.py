"""Vectorised box overlap and non-maximum suppression in numpy.

Every detector here ends with NMS, and the two face flows need one more pass: a face seen
by two overlapping person crops, or by two overlapping tiles plus the full-frame pass,
comes back several times with slightly different boxes. ``merge_duplicates`` keeps the
best-scoring copy, like supervision's ``Detections.with_nms``.

Why hand-written, and the project's only NMS (``_torchvision_compat`` serves it as the
``torchvision::nms`` kernel when torchvision's own ops cannot load): ``torchvision.ops.nms``
is exactly what is broken on such installs; ``cv2.dnn.NMSBoxes`` has no intersection-over-
smaller metric (needed for cut-off duplicates at tile borders); supervision's NMS does not
keep torchvision's tie order (lowest index first) and would be one more dependency for 20 lines.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from aas_core.vision.types import Detections

OverlapMetric = Literal["iou", "ios"]


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float32)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) in xyxy, got {b.shape}")
    return b


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of xyxy boxes; degenerate (inverted) boxes count as 0."""
    b = _as_boxes(boxes, "boxes")
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise intersection-over-union, shape (N, M). Empty unions give 0, not NaN."""
    a, b = _as_boxes(boxes_a, "boxes_a"), _as_boxes(boxes_b, "boxes_b")
    inter = _intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_ios(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area, shape (N, M).

    IoU undercounts a duplicate whose box is cut off (a face half outside a tile gives a box
    half the size of the real one: IoU 0.5 but IoS 1.0). SAHI merges with IoS for this reason.
    """
    a, b = _as_boxes(boxes_a, "boxes_a"), _as_boxes(boxes_b, "boxes_b")
    inter = _intersection(a, b)
    smaller = np.minimum(box_area(a)[:, None], box_area(b)[None, :])
    return np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5, metric: OverlapMetric = "iou") -> np.ndarray:
    """Greedy NMS; returns kept indices sorted by decreasing score (ties: lower index first).

    A box is dropped when its overlap with an already kept, higher-scoring box is
    *greater than* ``iou_threshold`` (torchvision's convention). Each step compares one
    box with all remaining ones at once, so the cost is O(N * kept) in vector operations.
    """
    b = _as_boxes(boxes, "boxes")
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(s) != len(b):
        raise ValueError(f"scores has {len(s)} entries for {len(b)} boxes")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if metric not in ("iou", "ios"):
        raise ValueError(f"metric must be 'iou' or 'ios', got {metric!r}")
    overlap = box_iou if metric == "iou" else box_ios
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        ov = overlap(b[i : i + 1], b[order[1:]])[0]
        order = order[1:][ov <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def merge_duplicates(dets: Detections, iou: float = 0.4, metric: OverlapMetric = "iou") -> Detections:
    """Collapse detections of the same object into the highest-scoring one.

    Used after the person-crop and tiled face flows, where one face is found by several
    overlapping windows. Landmarks and ``source`` travel with the kept box, so the result
    says which pass produced each surviving face. Output is sorted by decreasing score.
    """
    if len(dets) == 0:
        return dets
    keep = nms(dets.xyxy, dets.confidence, iou_threshold=iou, metric=metric)
    return dets[keep]


def filter_min_size(dets: Detections, min_px: float) -> Detections:
    """Drop detections whose shorter side is below ``min_px`` (too small to recognise)."""
    if min_px <= 0 or len(dets) == 0:
        return dets
    short = np.minimum(dets.widths, dets.heights)
    return dets[np.flatnonzero(short >= min_px)]


def clip_boxes(dets: Detections, width: int, height: int) -> Detections:
    """Clip boxes to the image; landmarks are left alone (they may sit just outside)."""
    if len(dets) == 0:
        return dets
    xyxy = dets.xyxy.copy()
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    return Detections(xyxy=xyxy, confidence=dets.confidence, landmarks=dets.landmarks, source=dets.source)
