"""YuNet face detector (OpenCV Zoo, MIT) through ``cv2.FaceDetectorYN``.

Tiny (230 kB) and fast; runs at the image's own resolution (no letterbox), so it sees
small faces in full frames that SCRFD at 640x640 misses, at a cost growing with pixels.
Verified: ``face_detection_yunet_2026may.onnx`` loads and detects with OpenCV 4.14.

Landmark order. OpenCV documents YuNet's five points as "right eye, left eye, nose tip,
right mouth corner, left mouth corner" — *the subject's* right/left. The subject's right
eye is on the image's left, so this is already InsightFace's order (left eye in the image
first, then right eye, nose, image-left mouth corner, image-right mouth corner), and no
reordering is needed; ``tests/vision/test_faces.py`` checks eye and mouth x-order on real
faces for every backend.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from aas_core.vision._backend_utils import check_bgr_image, check_threshold, shrink_to
from aas_core.vision.errors import ModelFileCorrupt, require_file
from aas_core.vision.types import Detections

#: Row layout of FaceDetectorYN output: x, y, w, h, 5 x (x, y) landmarks, score.
_LANDMARK_COLS = slice(4, 14)
_SCORE_COL = 14


class YunetFaceDetector:
    """Faces with 5-point landmarks from YuNet.

    ``max_side`` (optional) downsizes larger images before detection and maps results
    back; YuNet's cost is linear in pixels, so this is the speed/small-face trade-off.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int | None = None,
    ) -> None:
        import cv2

        self.model_path = require_file(model_path)
        try:
            self._detector = cv2.FaceDetectorYN.create(str(self.model_path), "", (320, 320), 0.5, nms_threshold, top_k)
        except cv2.error as exc:
            raise ModelFileCorrupt(self.model_path, f"cv2.FaceDetectorYN cannot load it: {exc}") from exc
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be >= 32, got {max_side}")
        self.max_side = max_side
        self._lock = threading.Lock()  # setInputSize/setScoreThreshold mutate the detector
        self.name = f"yunet:{self.model_path.stem}"

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.5) -> Detections:
        """Faces above ``conf_threshold`` (xyxy in image pixels) with InsightFace-order landmarks."""
        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        image, scale = shrink_to(image, self.max_side)
        ih, iw = image.shape[:2]
        with self._lock:
            self._detector.setInputSize((iw, ih))
            self._detector.setScoreThreshold(conf)
            _, faces = self._detector.detect(image)
        if faces is None or len(faces) == 0:
            return Detections.empty(with_landmarks=True)
        faces = np.asarray(faces, dtype=np.float32).reshape(-1, 15)
        xywh = faces[:, :4]
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1) / scale
        landmarks = faces[:, _LANDMARK_COLS].reshape(-1, 5, 2) / scale
        return Detections(xyxy=xyxy, confidence=faces[:, _SCORE_COL], landmarks=landmarks)
