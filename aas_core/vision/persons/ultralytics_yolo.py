"""Person detector through the Ultralytics package: ``YOLO(path)`` on a .pt or .onnx file.

Use it for weights plain ONNX Runtime cannot run (PyTorch ``.pt`` checkpoints) or to get
Ultralytics' own pre/post-processing. ``ultralytics`` (and with it torch) is imported only
when the class is instantiated, so the other backends never pay for it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from aas_core.vision._backend_utils import check_bgr_image, check_threshold
from aas_core.vision.errors import require_file
from aas_core.vision.types import Detections

# Ultralytics runs in a classroom PC that may be offline: never probe DNS, never pip-install.
_ULTRALYTICS_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false"}


class UltralyticsPersonDetector:
    """Persons via ``ultralytics.YOLO(path).predict(classes=[class_id])``."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        imgsz: int = 640,
        iou_threshold: float = 0.5,
        class_id: int = 0,
        max_det: int = 300,
        device: str | None = None,
    ) -> None:
        self.model_path = require_file(model_path)
        for key, value in _ULTRALYTICS_ENV.items():
            os.environ.setdefault(key, value)  # read by ultralytics at import time
        from aas_core.vision._torchvision_compat import ensure_torchvision_nms

        # Ultralytics' warm-up imports torchvision; on this torch build that import needs the shim.
        self.torchvision_shim = ensure_torchvision_nms()
        from ultralytics import YOLO

        self.model: Any = YOLO(str(self.model_path), task="detect")
        self.imgsz = int(imgsz)
        self.iou_threshold = check_threshold(iou_threshold, "iou_threshold")
        self.class_id = int(class_id)
        self.max_det = int(max_det)
        self.device = device
        self._lock = threading.Lock()  # the Ultralytics predictor keeps per-call state
        self.name = f"ultralytics:{self.model_path.stem}"

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.35) -> Detections:
        """Person boxes (xyxy, frame pixels). Numpy input is taken as BGR by Ultralytics."""
        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        kwargs: dict[str, Any] = {
            "classes": [self.class_id],
            "conf": conf,
            "iou": self.iou_threshold,
            "imgsz": self.imgsz,
            "max_det": self.max_det,
            "verbose": False,
        }
        if self.device is not None:
            kwargs["device"] = self.device
        with self._lock:
            result = self.model.predict(image, **kwargs)[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        return Detections(xyxy=boxes.xyxy.cpu().numpy(), confidence=boxes.conf.cpu().numpy())
