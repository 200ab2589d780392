"""OpenCV ``dnn_superres`` super-resolution (FSRCNN, ESPCN, LapSRN, EDSR ``.pb`` models).

Tiny TensorFlow graphs run by OpenCV's DNN module: no torch needed, a few milliseconds per
face crop, modest gains. Algorithm and scale come from the file name (``FSRCNN_x4.pb``),
the naming of the official models, because ``setModel`` needs both and the .pb does not
say. Needs opencv-contrib 4.x (OpenCV 5's TF importer cannot load these graphs).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import cv2
import numpy as np

from aas_core.vision._backend_utils import check_bgr_image
from aas_core.vision.errors import ModelFileCorrupt

_NAME_RE = re.compile(r"^(edsr|espcn|fsrcnn|lapsrn)[-_]?x(\d)", re.IGNORECASE)


def parse_model_name(path: str | Path) -> tuple[str, int]:
    """``("fsrcnn", 4)`` from ``FSRCNN_x4.pb``; ValueError for names OpenCV cannot map."""
    m = _NAME_RE.match(Path(path).stem)
    if not m:
        raise ValueError(
            f"cannot tell algorithm and scale from {Path(path).name!r}: expected e.g. FSRCNN_x4.pb, "
            "ESPCN_x3.pb, LapSRN_x8.pb, EDSR_x4.pb"
        )
    return m.group(1).lower(), int(m.group(2))


#: Used when no model is named.
DEFAULT_MODEL = "FSRCNN_x4"


class OpenCvSrEnhancer:
    """Implements :class:`~aas_core.vision.types.Enhancer`; ``name`` e.g. ``"sr:FSRCNN_x4"``.

    Args:
        model: manifest name, file name in ``models_dir`` or path of the ``.pb`` file.
        models_dir: where weights live (default: the ``models_dir`` setting).
    """

    def __init__(self, model: str | Path | None = None, models_dir: str | Path | None = None) -> None:
        from aas_core.vision import weights as registry

        self.model_path = registry.resolve(model or DEFAULT_MODEL, models_dir)
        self.algorithm, self.scale = parse_model_name(self.model_path)
        if not hasattr(cv2, "dnn_superres"):
            raise ImportError("cv2.dnn_superres missing: install opencv-contrib-python-headless 4.x")
        self._sr = cv2.dnn_superres.DnnSuperResImpl_create()
        try:
            self._sr.readModel(str(self.model_path))
        except cv2.error as exc:
            raise ModelFileCorrupt(self.model_path, f"OpenCV cannot read it: {exc}") from exc
        self._sr.setModel(self.algorithm, self.scale)
        self.name = f"sr:{self.model_path.stem}"
        # DnnSuperResImpl holds one cv2.dnn.Net: not safe for concurrent forward passes
        self._lock = threading.Lock()

    def enhance(self, crop_bgr: np.ndarray) -> np.ndarray:
        """BGR uint8 crop ``scale`` times larger in both dimensions."""
        img = check_bgr_image(crop_bgr, "crop")
        with self._lock:
            out = self._sr.upsample(img)
        expected = (img.shape[0] * self.scale, img.shape[1] * self.scale, 3)
        if out.shape != expected:  # guards against a file whose real scale differs from its name
            raise ValueError(f"{self.name} returned {out.shape}, expected {expected}: is the file name's scale right?")
        return out

    def __repr__(self) -> str:
        return f"OpenCvSrEnhancer({self.name!r}, scale={self.scale})"
