"""Pieces shared by the two dlib face detectors: score mapping and 5-point landmarks.

dlib's shape predictors do not output InsightFace's five points, so they are derived:

* ``"68"`` (``shape_predictor_68_face_landmarks.dat``): every point is measured — eye
  centres = mean of the six eye-contour points, nose tip = point 30, mouth corners = 48/54.
* ``"5"`` (``shape_predictor_5_face_landmarks.dat``, 9 MB, ~10x faster to load): dlib gives
  two corners per eye and the nose *base*. Eye centres are the corner means (measured);
  the nose tip is the measured nose base moved by the base->tip offset of the template;
  the mouth corners are **estimated**: the similarity transform that maps the template's
  (eye, eye, nose-base) onto the measured ones is applied to the template mouth corners.
  Template = ArcFace's 112x112 five points; where dlib's eye centres and nose base sit in
  that frame was measured on the 159 Glint360k aligned crops of faces_dev that dlib HOG
  detects (``_DLIB5_IN_ARCFACE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing, require_file

LandmarkModel = Literal["5", "68", "none"]

#: ArcFace 112x112 template: left eye, right eye, nose tip, left mouth, right mouth (image terms).
ARCFACE_5PTS = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
#: Mean position of dlib-5's left eye centre, right eye centre and nose base in the same frame.
_DLIB5_IN_ARCFACE = np.array([[38.08, 53.47], [73.09, 53.33], [56.27, 81.07]], dtype=np.float32)


def to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """dlib wants a contiguous RGB uint8 array."""
    return np.ascontiguousarray(image_bgr[:, :, ::-1])


def margin_to_confidence(margin: np.ndarray | float) -> np.ndarray:
    """dlib scores are SVM/MMOD margins (0 = dlib's own threshold); map them into (0, 1).

    The logistic keeps the order and puts dlib's default threshold at exactly 0.5, so the
    pipeline's ``face_conf`` = 0.5 means "what dlib would return by default".
    """
    return (1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))).astype(np.float32)


def confidence_to_margin(conf: float) -> float:
    """Inverse of :func:`margin_to_confidence` (for dlib's ``adjust_threshold``)."""
    c = min(max(conf, 1e-6), 1 - 1e-6)
    return float(np.log(c / (1 - c)))


def rects_to_xyxy(rects: Any) -> np.ndarray:
    """dlib rectangles (inclusive corners) -> float32 (N, 4) xyxy with exclusive right/bottom."""
    if len(rects) == 0:
        return np.zeros((0, 4), np.float32)
    return np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], dtype=np.float32)


def _complex(points: np.ndarray) -> np.ndarray:
    return points[..., 0] + 1j * points[..., 1]


def five_from_dlib5(parts: np.ndarray) -> np.ndarray:
    """(N, 5, 2) dlib-5 points -> (N, 5, 2) InsightFace-order points (see module docstring).

    dlib-5 order: 0/1 = outer/inner corner of the eye on the image's right, 2/3 = outer/inner
    corner of the eye on the image's left, 4 = nose base. The similarity fit is done with
    complex numbers so it is one vectorised least-squares solve for all faces.
    """
    parts = np.asarray(parts, dtype=np.float64).reshape(-1, 5, 2)
    left_eye = parts[:, 2:4].mean(axis=1)
    right_eye = parts[:, 0:2].mean(axis=1)
    nose_base = parts[:, 4]
    dst = _complex(np.stack([left_eye, right_eye, nose_base], axis=1))  # (N, 3)
    src = _complex(_DLIB5_IN_ARCFACE.astype(np.float64))  # (3,)
    src_c = src - src.mean()
    dst_c = dst - dst.mean(axis=1, keepdims=True)
    a = (np.conj(src_c)[None] * dst_c).sum(axis=1) / (np.abs(src_c) ** 2).sum()  # rotation * scale
    b = dst.mean(axis=1) - a * src.mean()
    tmpl = _complex(ARCFACE_5PTS.astype(np.float64))
    mouth = a[:, None] * tmpl[None, 3:5] + b[:, None]
    nose_tip = _complex(nose_base) + a * (tmpl[2] - src[2])
    out = np.stack([_complex(left_eye), _complex(right_eye), nose_tip, mouth[:, 0], mouth[:, 1]], axis=1)
    return np.stack([out.real, out.imag], axis=-1).astype(np.float32)


def five_from_dlib68(parts: np.ndarray) -> np.ndarray:
    """(N, 68, 2) iBUG-68 points -> (N, 5, 2) InsightFace-order points, all measured."""
    p = np.asarray(parts, dtype=np.float32).reshape(-1, 68, 2)
    return np.stack(
        [p[:, 36:42].mean(axis=1), p[:, 42:48].mean(axis=1), p[:, 30], p[:, 48], p[:, 54]], axis=1
    ).astype(np.float32)


def default_predictor_path(kind: LandmarkModel) -> Path:
    """Shape predictor shipped with the ``face_recognition_models`` package."""
    try:
        import face_recognition_models as frm
    except ImportError as exc:
        name = "shape_predictor_5_face_landmarks.dat" if kind == "5" else "shape_predictor_68_face_landmarks.dat"
        raise ModelFileMissing(name, "face_recognition_models") from exc
    loc = frm.pose_predictor_five_point_model_location() if kind == "5" else frm.pose_predictor_model_location()
    return Path(loc)


class DlibLandmarker:
    """Runs a dlib shape predictor on detected boxes and returns InsightFace-order 5 points."""

    def __init__(self, kind: LandmarkModel = "5", path: str | Path | None = None) -> None:
        import dlib

        if kind not in ("5", "68"):
            raise ValueError(f"landmarks must be '5', '68' or 'none', got {kind!r}")
        self.kind = kind
        self.path = require_file(path or default_predictor_path(kind))
        try:
            self._predictor = dlib.shape_predictor(str(self.path))
        except RuntimeError as exc:
            raise ModelFileCorrupt(self.path, f"dlib cannot load it: {exc}") from exc
        self._n = 5 if kind == "5" else 68

    def __call__(self, rgb: np.ndarray, rects: Any) -> np.ndarray:
        """(N, 5, 2) landmarks for ``rects`` (dlib rectangles) in ``rgb``."""
        if len(rects) == 0:
            return np.zeros((0, 5, 2), np.float32)
        parts = np.empty((len(rects), self._n, 2), np.float32)
        for i, rect in enumerate(rects):
            shape = self._predictor(rgb, rect)
            parts[i] = [(shape.part(j).x, shape.part(j).y) for j in range(self._n)]
        return five_from_dlib5(parts) if self.kind == "5" else five_from_dlib68(parts)
