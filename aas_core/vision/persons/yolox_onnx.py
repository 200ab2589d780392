"""YOLOX person detector (e.g. YOLOX-nano, Apache-2.0) on plain ONNX Runtime.

The official YOLOX ONNX exports (release 0.1.1rc0 and later) differ from YOLOv8 in three
ways this backend handles:

* input is **BGR, 0-255, not normalised**, letterboxed to the top-left and padded with
  114 (YOLOX's ``preproc``). Checked on a real photo with yolox_nano.onnx: BGR 0-255 gives
  person scores 0.96/0.95, RGB normalised gives < 0.001. ``legacy=True`` switches to the
  RGB mean/std input of pre-0.1.1 models;
* the output ``[1, A, 5 + nc]`` is raw: centre offsets per grid cell and log sizes per
  stride (8, 16, 32) must be decoded (``demo_postprocess``) unless the model was exported
  with ``--decode_in_inference`` (pass ``decoded=True`` then);
* score = objectness x class probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aas_core.vision._backend_utils import (
    check_bgr_image,
    check_threshold,
    cxcywh_to_xyxy,
    letterbox,
    network_input_size,
    onnx_session,
)
from aas_core.vision.nms import nms
from aas_core.vision.types import Detections

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def yolox_grids(input_size: tuple[int, int], strides: Sequence[int] = (8, 16, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Grid-cell origins (A, 2) and their strides (A, 1) in YOLOX's output order."""
    w, h = input_size
    grids, expanded = [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        grids.append(np.stack([gx, gy], axis=-1).reshape(-1, 2))
        expanded.append(np.full((grids[-1].shape[0], 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(expanded).astype(np.float32)


class YoloxOnnxPersonDetector:
    """Persons (COCO class 0 by default) from a YOLOX ONNX export."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        providers: Sequence[str] | None = None,
        imgsz: int | tuple[int, int] = 416,
        iou_threshold: float = 0.5,
        class_id: int = 0,
        max_det: int = 300,
        decoded: bool = False,
        legacy: bool = False,
        threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.session = onnx_session(self.model_path, providers=providers, threads=threads)
        self._input_name = self.session.get_inputs()[0].name
        self.input_size = network_input_size(self.session, imgsz)
        self._grids, self._strides = yolox_grids(self.input_size)
        n_out = self.session.get_outputs()[0].shape[1]
        if isinstance(n_out, int) and n_out != len(self._grids):
            raise ValueError(
                f"{self.model_path.name}: {n_out} outputs but strides 8/16/32 at {self.input_size} give "
                f"{len(self._grids)}; not a standard YOLOX head"
            )
        self.class_id = int(class_id)
        self.iou_threshold = check_threshold(iou_threshold, "iou_threshold")
        self.max_det = int(max_det)
        self.decoded = decoded
        self.legacy = legacy
        self.name = f"yolox-onnx:{self.model_path.stem}"

    def _preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        padded, scale, _ = letterbox(image, self.input_size, pad_value=114, center=False)
        x = padded.astype(np.float32)
        if self.legacy:
            x = (x[:, :, ::-1] / 255.0 - _MEAN) / _STD
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32), scale

    def _decode(self, out: np.ndarray) -> np.ndarray:
        """Raw (A, 5 + nc) -> (A, 5 + nc) with cx, cy, w, h in network pixels."""
        out = np.asarray(out, dtype=np.float32)[0].copy()
        if not self.decoded:
            out[:, :2] = (out[:, :2] + self._grids) * self._strides
            out[:, 2:4] = np.exp(out[:, 2:4]) * self._strides
        return out

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.35) -> Detections:
        """Person boxes (xyxy, frame pixels) with objectness x class score above ``conf_threshold``."""
        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        blob, scale = self._preprocess(image)
        out = self._decode(self.session.run(None, {self._input_name: blob})[0])
        nc = out.shape[1] - 5
        if not 0 <= self.class_id < nc:
            raise ValueError(f"class_id {self.class_id} out of range for a {nc}-class head")
        scores = out[:, 4] * out[:, 5 + self.class_id]
        keep = scores > conf
        xyxy, scores = cxcywh_to_xyxy(out[keep, :4]), scores[keep]
        if len(scores):
            idx = nms(xyxy, scores, self.iou_threshold)[: self.max_det]
            xyxy, scores = xyxy[idx], scores[idx]
        h, w = image.shape[:2]
        xyxy = np.clip(xyxy / scale, 0, np.array([w, h, w, h], np.float32))
        return Detections(xyxy=xyxy, confidence=scores)
