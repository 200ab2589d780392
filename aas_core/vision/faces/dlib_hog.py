"""dlib HOG + linear SVM frontal face detector (``dlib.get_frontal_face_detector``).

No weight file, runs anywhere dlib does, but only finds roughly frontal faces of about
80 px and up at ``upsample=0`` (each upsample step halves that, at ~4x the cost). Kept as
the dependency-light fallback and for comparison in the Pipeline Inspector.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from aas_core.vision._backend_utils import check_bgr_image, check_threshold
from aas_core.vision.faces._dlib_common import (
    DlibLandmarker,
    LandmarkModel,
    confidence_to_margin,
    margin_to_confidence,
    rects_to_xyxy,
    to_rgb,
)
from aas_core.vision.types import Detections


class DlibHogFaceDetector:
    """Faces from dlib's HOG detector, with 5 landmarks from a dlib shape predictor.

    ``confidence`` is the logistic of dlib's SVM margin, so ``conf_threshold=0.5`` equals
    dlib's default threshold of 0 (see ``_dlib_common.margin_to_confidence``).
    ``landmarks``: ``"5"`` (default; mouth corners estimated), ``"68"`` (all measured, slower
    to load) or ``"none"`` (``Detections.landmarks`` is None).
    """

    def __init__(
        self,
        *,
        upsample: int = 1,
        landmarks: LandmarkModel = "5",
        predictor_path: str | Path | None = None,
    ) -> None:
        import dlib

        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._landmarker = None if landmarks == "none" else DlibLandmarker(landmarks, predictor_path)
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe
        self.name = f"dlib-hog:up{self.upsample}"

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.5) -> Detections:
        """Faces whose logistic(SVM margin) is at least ``conf_threshold``."""
        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        rgb = to_rgb(image)
        with self._lock:
            rects, margins, _ = self._detector.run(rgb, self.upsample, confidence_to_margin(conf))
            lms = None if self._landmarker is None else self._landmarker(rgb, rects)
        return Detections(xyxy=rects_to_xyxy(rects), confidence=margin_to_confidence(margins), landmarks=lms)
