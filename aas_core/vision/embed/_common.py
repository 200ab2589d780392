"""Helpers shared by the embedders: normalisation, fallback crops, FAR-based thresholds."""

from __future__ import annotations

import cv2
import numpy as np

_EPS = 1e-12


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32). Zero rows stay zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, _EPS)


def square_box_crop(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Square ``size`` x ``size`` crop centred on ``box`` (side = the box's longer side).

    Fallback alignment for faces without landmarks: a face detector's box spans roughly
    brow-to-chin, so its centred square resembles a loose ArcFace crop. Parts outside the
    image are filled with black, as ``norm_crop`` does. One affine warp, no padding copy.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    s = size / side
    m = np.array([[s, 0, size / 2 - cx * s], [0, s, size / 2 - cy * s]], np.float32)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


def far_threshold(impostor_scores: np.ndarray, far: float = 1e-3) -> float:
    """Smallest threshold whose false-accept rate on ``impostor_scores`` is <= ``far``.

    Used by ``benchmarks/calibrate_embedders.py`` to derive each embedder's
    ``default_threshold``: the (1 - far) quantile of impostor similarities.
    """
    s = np.sort(np.asarray(impostor_scores, dtype=np.float64).ravel())
    if not len(s):
        raise ValueError("no impostor scores")
    if not 0 < far < 1:
        raise ValueError(f"far must be in (0, 1), got {far}")
    k = int(np.floor(far * len(s)))  # at most k impostors may score >= threshold
    return float(np.nextafter(s[len(s) - k - 1], np.inf))
