"""SCRFD face detector (InsightFace) through ``insightface.model_zoo``.

Works with every InsightFace detection export: ``scrfd_2.5g.onnx`` / ``det_2.5g.onnx``,
``scrfd_500m.onnx`` / ``det_500m.onnx``, ``det_10g.onnx`` and static 640x640 exports such as
``scrfd_500m_bnkps.onnx``. Returns boxes plus 5 landmarks in InsightFace order (left eye,
right eye, nose, left mouth corner, right mouth corner, *as seen in the image*), which is
what ArcFace-style alignment expects.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aas_core.vision._backend_utils import (
    check_bgr_image,
    check_threshold,
    cv2_resize,
    resolve_providers,
    session_options,
)
from aas_core.vision.errors import ModelFileCorrupt, require_file
from aas_core.vision.types import Detections

log = logging.getLogger(__name__)


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int]:
    if len(input_size) != 2:
        raise ValueError(f"input_size must be (width, height), got {input_size!r}")
    w, h = int(input_size[0]), int(input_size[1])
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise ValueError(f"input_size must be positive multiples of 32 (SCRFD's largest stride), got {input_size!r}")
    return w, h


class ScrfdFaceDetector:
    """Faces with 5-point landmarks from an InsightFace SCRFD ONNX model.

    ``input_size`` (width, height) is the network resolution the image is letterboxed
    into. 640x640 is InsightFace's default; a 1920x1080 frame then shrinks 3x, so faces
    under ~40 px vanish — raise ``input_size`` (e.g. (1280, 736)) or use the tiled flow.
    Each new size builds one extra static-shape ONNX session (InsightFace caches them).

    :meth:`detect_scaled` is the other way in, used by the detection schedule
    (:func:`aas_core.vision.faces.flows.detect_faces_scheduled`): the image is resized by a
    chosen factor and padded to the next multiple of 32 only, no letterbox into a fixed
    square, and run through the model's dynamic-shape session, so any strip or frame size
    costs one inference and no extra session.

    ``max_upscale`` caps how much a *small* image is enlarged by the letterbox. InsightFace
    always stretches the image to fill the network input, so a tight 112x112 face crop
    becomes a 640 px face, far above SCRFD's anchors: measured on faces_dev, SCRFD finds
    1/56 Glint crops and 0/80 ORL crops that way (56/56 and 80/80 with the default 2.0). Small images are therefore zero-padded on
    the bottom/right (coordinates unchanged; the same zeros InsightFace pads with) so the
    enlargement stays <= ``max_upscale``. Frames at least input_size/max_upscale big are
    untouched. ``None`` restores InsightFace's behaviour.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        input_size: Sequence[int] = (640, 640),
        nms_threshold: float = 0.4,
        max_upscale: float | None = 2.0,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        from insightface.model_zoo import get_model

        self.model_path = require_file(model_path)
        chosen = resolve_providers(providers)
        try:
            model: Any = get_model(str(self.model_path), providers=chosen, sess_options=session_options(threads))
        except Exception as exc:  # ORT load errors, insightface routing asserts
            raise ModelFileCorrupt(self.model_path, f"InsightFace cannot load it: {exc}") from exc
        if model is None or getattr(model, "taskname", None) != "detection":
            raise ModelFileCorrupt(self.model_path, "not an InsightFace detection model (SCRFD/RetinaFace outputs)")
        if max_upscale is not None and max_upscale <= 0:
            raise ValueError(f"max_upscale must be > 0 or None, got {max_upscale}")
        self.max_upscale = max_upscale
        self.input_size = _check_input_size(input_size)
        static = getattr(model, "static_input_size", None)
        if static is not None and tuple(static) != self.input_size:
            log.info("%s has a fixed %s input; ignoring input_size=%s", self.model_path.name, static, self.input_size)
            self.input_size = tuple(int(v) for v in static)  # type: ignore[assignment]
        ctx_id = -1 if chosen == ["CPUExecutionProvider"] else 0  # ctx_id < 0 forces the CPU provider
        model.prepare(ctx_id=ctx_id, input_size=self.input_size, det_thresh=0.5, nms_thresh=nms_threshold)
        self._model = model
        # detect_scaled runs the export's own dynamic-shape session for every size. InsightFace
        # >= 2 routes detect() through one new static-shape session per input size, built on
        # first use (~130 ms each): fine for one fixed size, not for strips of varying height.
        # A second SCRFD wrapper without a model file shares the session and never builds more.
        self._dynamic = None
        if getattr(model, "static_input_size", None) is None:
            from insightface.model_zoo.scrfd import SCRFD

            try:
                dyn = SCRFD(session=model.session, static_shape_sessions=False)
            except TypeError:  # InsightFace < 2: one dynamic session already
                dyn = SCRFD(session=model.session)
            dyn.prepare(ctx_id=ctx_id, nms_thresh=nms_threshold)
            self._dynamic = dyn
        # InsightFace >= 1.0 takes det_thresh per call; older versions only read the attribute.
        self._per_call_threshold = "det_thresh" in inspect.signature(model.detect).parameters
        self._lock = threading.Lock()
        self.has_landmarks = bool(getattr(model, "use_kps", False))
        self.name = f"scrfd:{self.model_path.stem}"

    def _pad_small(self, image: np.ndarray) -> np.ndarray:
        """Zero-pad bottom/right so the letterbox enlarges by at most ``max_upscale``."""
        if self.max_upscale is None:
            return image
        h, w = image.shape[:2]
        min_w = int(np.ceil(self.input_size[0] / self.max_upscale))
        min_h = int(np.ceil(self.input_size[1] / self.max_upscale))
        if w >= min_w or h >= min_h:  # letterbox scale = min(in_w / w, in_h / h) <= max_upscale already
            return image
        out = np.zeros((max(h, min_h), max(w, min_w), 3), dtype=np.uint8)
        out[:h, :w] = image
        return out

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.5) -> Detections:
        """Faces above ``conf_threshold`` (xyxy in image pixels) with landmarks when the model has them."""
        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        image = self._pad_small(image)
        if self._per_call_threshold:
            det, kps = self._model.detect(image, input_size=self.input_size, max_num=0, det_thresh=conf)
        else:
            with self._lock:
                self._model.det_thresh = conf
                det, kps = self._model.detect(image, input_size=self.input_size, max_num=0)
        if det is None or len(det) == 0:
            return Detections.empty(with_landmarks=self.has_landmarks)
        return Detections(xyxy=det[:, :4], confidence=det[:, 4], landmarks=kps if self.has_landmarks else None)

    def detect_scaled(self, image_bgr: np.ndarray, scale: float, conf_threshold: float = 0.5) -> Detections:
        """Faces found with the image resized by ``scale`` (<= 1 shrinks), boxes in image pixels.

        The resized image is zero-padded bottom/right to multiples of 32 (SCRFD's largest
        stride) and run as is: the network sees faces ``scale`` times their size, whatever
        the frame's size or aspect. Static exports (fixed input) fall back to :meth:`detect`
        on the resized image.
        """
        image = check_bgr_image(image_bgr)
        conf = check_threshold(conf_threshold)
        if not 0 < scale <= 4:
            raise ValueError(f"scale must be in (0, 4], got {scale}")
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = image if (nw, nh) == (w, h) else cv2_resize(image, (nw, nh))
        sx, sy = nw / w, nh / h
        if self._dynamic is None:
            found = self.detect(small, conf)
            return _unscale(found, sx, sy)
        pw, ph = max(32, -(-nw // 32) * 32), max(32, -(-nh // 32) * 32)
        if (pw, ph) != (nw, nh):
            padded = np.zeros((ph, pw, 3), np.uint8)
            padded[:nh, :nw] = small
            small = padded
        scores, boxes, kpss = self._dynamic.forward(small, conf)
        if not scores or sum(len(v) for v in scores) == 0:
            return Detections.empty(with_landmarks=self.has_landmarks)
        sc = np.vstack(scores).ravel().astype(np.float32)
        order = np.argsort(-sc, kind="stable")
        pre = np.hstack([np.vstack(boxes), sc[:, None]]).astype(np.float32)[order]
        keep = self._dynamic.nms(pre)
        det = pre[keep]
        lms = np.vstack(kpss)[order][keep] if self.has_landmarks and kpss else None
        found = Detections(xyxy=det[:, :4], confidence=det[:, 4], landmarks=lms)
        return _unscale(found, sx, sy)


def _unscale(found: Detections, sx: float, sy: float) -> Detections:
    """Detections made on an image resized by (sx, sy) mapped back to the original pixels."""
    if len(found) == 0 or (sx == 1.0 and sy == 1.0):
        return found
    f = np.array([sx, sy, sx, sy], np.float32)
    lms = None if found.landmarks is None else found.landmarks / np.array([sx, sy], np.float32)
    return Detections(found.xyxy / f, found.confidence, lms, found.source)
