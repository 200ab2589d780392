"""dlib's CNN (MMOD) face detector, ``mmod_human_face_detector.dat``.

More robust than HOG to pose and lighting, but slow on a CPU (seconds for a 1024x768
frame with upsample=0 on 2 cores): use it for enrollment photos or in person crops, not
for full classroom frames. The weights ship with the ``face_recognition_models`` package;
a ``mmod_human_face_detector.dat`` in the models folder takes precedence.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from aas_core.vision._backend_utils import check_bgr_image, check_threshold
from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing, require_file
from aas_core.vision.faces._dlib_common import (
    DlibLandmarker,
    LandmarkModel,
    margin_to_confidence,
    rects_to_xyxy,
    to_rgb,
)
from aas_core.vision.types import Detections

MMOD_FILE = "mmod_human_face_detector.dat"


def default_mmod_path() -> Path:
    """The detector file bundled with ``face_recognition_models``."""
    try:
        import face_recognition_models as frm
    except ImportError as exc:
        raise ModelFileMissing(MMOD_FILE, "face_recognition_models") from exc
    return Path(frm.cnn_face_detector_model_location())


class DlibCnnFaceDetector:
    """Faces from dlib's MMOD CNN, with 5 landmarks from a dlib shape predictor.

    ``confidence`` is the logistic of the MMOD score; dlib only returns detections with a
    positive score, so every returned confidence is above 0.5 and thresholds below 0.5
    cannot recover more faces. ``upsample`` doubles the image per step (finds faces down to
    ~40 px at 0, ~20 px at 1) at ~4x the cost each.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        upsample: int = 0,
        landmarks: LandmarkModel = "5",
        predictor_path: str | Path | None = None,
    ) -> None:
        import dlib

        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.model_path = require_file(model_path or default_mmod_path())
        try:
            self._detector = dlib.cnn_face_detection_model_v1(str(self.model_path))
        except RuntimeError as exc:
            raise ModelFileCorrupt(self.model_path, f"dlib cannot load it: {exc}") from exc
        self.upsample = int(upsample)
        self._landmarker = None if landmarks == "none" else DlibLandmarker(landmarks, predictor_path)
        self._lock = threading.Lock()
        self.name = f"dlib-cnn:up{self.upsample}"

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.5) -> Detections:
        """Faces whose logistic(MMOD score) is at least ``conf_threshold``."""
        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        rgb = to_rgb(image)
        with self._lock:
            found = self._detector(rgb, self.upsample)
            scores = margin_to_confidence(np.array([d.confidence for d in found], dtype=np.float64))
            rects = [d.rect for i, d in enumerate(found) if scores[i] >= conf]
            lms = None if self._landmarker is None else self._landmarker(rgb, rects)
        return Detections(xyxy=rects_to_xyxy(rects), confidence=scores[scores >= conf], landmarks=lms)
