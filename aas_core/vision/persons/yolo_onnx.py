"""YOLOv8 (Ultralytics export) person detector on plain ONNX Runtime.

No torch, no ultralytics: letterbox, one session run, decode, NMS in numpy. Works with any
``yolo export format=onnx`` detection model (int8-quantised or not, static or dynamic
input, fp32 or fp16 input), because everything it needs is read from the session:
input size, input dtype and, for end-to-end exports (``nms=True``, YOLOv10/YOLO26), the
``[1, K, 6]`` already-suppressed output.
"""

from __future__ import annotations

import ast
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


def _parse_metadata(meta: dict[str, str]) -> tuple[dict[int, str], bool]:
    """Class names and whether the export already contains NMS, from Ultralytics metadata."""
    names: dict[int, str] = {}
    try:
        parsed = ast.literal_eval(meta.get("names", "{}"))
        if isinstance(parsed, dict):
            names = {int(k): str(v) for k, v in parsed.items()}
    except (ValueError, SyntaxError):
        pass
    end2end = meta.get("end2end", "").lower() == "true"
    try:
        args = ast.literal_eval(meta.get("args", "{}"))
        end2end = end2end or bool(isinstance(args, dict) and args.get("nms"))
    except (ValueError, SyntaxError):
        pass
    return names, end2end


class YoloOnnxPersonDetector:
    """Persons (COCO class 0 by default) from a YOLOv8-style ONNX export.

    Preprocessing mirrors Ultralytics exactly (centred letterbox padded with grey 114,
    BGR->RGB, /255) so scores match ``YOLO(path).predict`` on the same file.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        providers: Sequence[str] | None = None,
        imgsz: int | tuple[int, int] = 640,
        iou_threshold: float = 0.5,
        class_id: int = 0,
        max_det: int = 300,
        threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.session = onnx_session(self.model_path, providers=providers, threads=threads)
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.input_size = network_input_size(self.session, imgsz)
        self.names, self.end2end = _parse_metadata(self.session.get_modelmeta().custom_metadata_map)
        if self.names and class_id not in self.names:
            raise ValueError(f"class_id {class_id} not in the model's classes ({len(self.names)} classes)")
        self.class_id = class_id
        self.iou_threshold = check_threshold(iou_threshold, "iou_threshold")
        self.max_det = int(max_det)
        self.name = f"yolo-onnx:{self.model_path.stem}"

    def _preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        padded, scale, pad = letterbox(image, self.input_size, pad_value=114, center=True)
        blob = padded[:, :, ::-1].transpose(2, 0, 1)[None].astype(self._input_dtype) / self._input_dtype(255.0)
        return np.ascontiguousarray(blob), scale, pad

    def _decode(self, out: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray]:
        """Raw head -> (xyxy in network pixels, scores) for ``class_id``, before NMS."""
        out = np.asarray(out, dtype=np.float32)[0]
        if self.end2end:  # (K, 6): x1, y1, x2, y2, score, class
            mask = (out[:, 5].astype(np.int64) == self.class_id) & (out[:, 4] > conf)
            return out[mask, :4], out[mask, 4]
        if out.shape[0] < out.shape[1]:  # (4 + nc, N) -> (N, 4 + nc)
            out = out.T
        nc = out.shape[1] - 4
        if not 0 <= self.class_id < nc:
            raise ValueError(f"class_id {self.class_id} out of range for a {nc}-class head")
        scores = out[:, 4 + self.class_id]
        keep = scores > conf
        return cxcywh_to_xyxy(out[keep, :4]), scores[keep]

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.35) -> Detections:
        """Person boxes (xyxy, frame pixels) with scores above ``conf_threshold``."""
        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        blob, scale, (left, top) = self._preprocess(image)
        out = self.session.run(None, {self._input_name: blob})[0]
        xyxy, scores = self._decode(out, conf)
        if not self.end2end and len(scores):
            keep = nms(xyxy, scores, self.iou_threshold)[: self.max_det]
            xyxy, scores = xyxy[keep], scores[keep]
        h, w = image.shape[:2]
        xyxy = (xyxy - np.array([left, top, left, top], np.float32)) / scale
        xyxy = np.clip(xyxy, 0, np.array([w, h, w, h], np.float32))
        return Detections(xyxy=xyxy, confidence=scores)
