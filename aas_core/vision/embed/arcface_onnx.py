"""ArcFace-style ONNX embedders (insightface ``w600k_r50.onnx``, ``mobilefacenet.onnx``, ...).

Any ONNX model that maps a 112x112 aligned face (N, 3, 112, 112) to an (N, d) embedding
works: faces are aligned with insightface's ``norm_crop`` (similarity transform of the 5
detector landmarks onto the ArcFace template), all faces of an image go through one
``session.run``, and outputs are L2-normalised so a dot product is the cosine similarity.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aas_core.vision._backend_utils import check_bgr_image, onnx_session
from aas_core.vision.embed._common import l2_normalize, square_box_crop
from aas_core.vision.types import Detections

log = logging.getLogger(__name__)

# insightface's norm_crop calls skimage's deprecated SimilarityTransform.estimate; the
# warning says nothing actionable for us, and would be printed once per process.
warnings.filterwarnings("ignore", message=".*`estimate` is deprecated.*", category=FutureWarning)

#: Open-set cosine thresholds per model (file stem); how they were measured: docs/EVALUATION.md#embedder-calibration.
#: ``mobilefacenet_int8`` is the copy `aas models quantize` makes: measured on faces_dev it has
#: the same impostor distribution (0.022 +- 0.107), FAR 1e-3 at 0.364 (fp32 0.360), 1 % of
#: unknown people named at 0.454 (fp32 0.457), so the same roster-level compromise applies.
CALIBRATED_THRESHOLDS: dict[str, float] = {"mobilefacenet": 0.42, "mobilefacenet_int8": 0.42, "w600k_mbf": 0.33}

#: Loose thresholds (pairwise FAR 1e-2 on faces_dev, `aas eval faces ... --json`,
#: thresholds_at_far["1e-2"]): only used together with other evidence (seat continuity).
LOOSE_THRESHOLDS: dict[str, float] = {"mobilefacenet": 0.31, "mobilefacenet_int8": 0.31,  # int8: 0.317 measured
                                    "w600k_mbf": 0.22}  # 0.2221 measured

#: Models not calibrated here (e.g. w600k_r50: its weights are not available to measure).
#: ArcFace-family impostor similarities centre on 0 and spread less for stronger models,
#: so the threshold measured on the weaker MobileFaceNet is a conservative stand-in.
#: Calibrate with ``benchmarks/calibrate_embedders.py --arcface PATH`` and add it above.
UNCALIBRATED_THRESHOLD = 0.42

#: Used when no model is named: the one whose weights are in the shared dev models folder.
DEFAULT_MODEL = "mobilefacenet"


def _baked_in_normalisation(model_path: Path) -> bool:
    """True if the graph subtracts the mean / scales itself (mxnet-exported insightface models).

    Same rule as insightface's ``ArcFaceONNX``: ``Sub`` and ``Mul`` nodes among the first
    eight. Those models want raw 0..255 pixels; all others want (x - 127.5) / 127.5.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    first = [(n.op_type, n.name) for n in graph.node[:8]]
    has_sub = any(op == "Sub" or name.startswith(("Sub", "_minus")) for op, name in first)
    has_mul = any(op == "Mul" or name.startswith(("Mul", "_mul")) for op, name in first)
    return has_sub and has_mul


class ArcFaceOnnxEmbedder:
    """Embeds faces with an ArcFace-style ONNX model; implements :class:`~aas_core.vision.types.Embedder`.

    Args:
        model: manifest name, file name in ``models_dir`` or a path (``"mobilefacenet"``,
            ``"w600k_r50.onnx"``; None = ``DEFAULT_MODEL``). Resolved and sha256-checked by the registry.
        models_dir: where weights live (default: the ``models_dir`` setting).
        providers: ONNX Runtime providers (default: the ``onnx_providers`` setting).

    Faces without landmarks fall back to a centred square crop of their box resized to
    112x112 (no rotation correction): it works for roughly frontal faces but loses a few
    points of accuracy, so prefer a detector with landmarks (SCRFD, YuNet, RetinaFace).
    """

    dim: int
    name: str
    default_threshold: float
    calibrated: bool

    def __init__(
        self,
        model: str | Path | None = None,
        models_dir: str | Path | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        from aas_core.vision import weights as registry

        self.model_path = registry.resolve(model or DEFAULT_MODEL, models_dir)
        self.session = onnx_session(self.model_path, providers, threads)
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise ValueError(f"{self.model_path.name}: expected an (N, 3, H, W) input, got {shape}")
        h, w = (d if isinstance(d, int) else 112 for d in shape[2:4])
        if h != w or h % 112:
            raise ValueError(f"{self.model_path.name}: ArcFace alignment needs a square 112k input, got {h}x{w}")
        self.input_size = int(h)
        #: Batch size the graph accepts (None = any): some exports are fixed to 1.
        self.fixed_batch: int | None = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        if _baked_in_normalisation(self.model_path):
            self.input_mean, self.input_std = 0.0, 1.0
        else:
            self.input_mean, self.input_std = 127.5, 127.5
        out_shape = self.session.get_outputs()[0].shape
        if isinstance(out_shape[-1], int):
            self.dim = int(out_shape[-1])
        else:  # symbolic output size: ask the model once
            probe = np.zeros((self.fixed_batch or 1, self.input_size, self.input_size, 3), np.uint8)
            self.dim = int(self._run(probe).shape[1])
        stem = self.model_path.stem
        self.name = f"arcface:{stem}"
        self.calibrated = stem in CALIBRATED_THRESHOLDS
        self.default_threshold = CALIBRATED_THRESHOLDS.get(stem, UNCALIBRATED_THRESHOLD)
        self.loose_threshold = LOOSE_THRESHOLDS.get(stem, UNCALIBRATED_THRESHOLD - 0.11)
        if not self.calibrated:
            log.warning("%s has no calibrated threshold; using %.2f (run benchmarks/calibrate_embedders.py)",
                        self.name, self.default_threshold)

    # ------------------------------------------------------------------ alignment
    def align(self, image_bgr: np.ndarray, faces: Detections) -> np.ndarray:
        """Aligned (N, S, S, 3) uint8 BGR crops, S = the model's input size (112)."""
        from insightface.utils.face_align import norm_crop

        image = check_bgr_image(image_bgr)
        s = self.input_size
        out = np.empty((len(faces), s, s, 3), np.uint8)
        lms = faces.landmarks
        for i in range(len(faces)):
            if lms is not None and np.isfinite(lms[i]).all():
                out[i] = norm_crop(image, landmark=lms[i], image_size=s)
            else:
                out[i] = square_box_crop(image, faces.xyxy[i], s)
        return out

    # ------------------------------------------------------------------ embedding
    def embed(self, image_bgr: np.ndarray, faces: Detections) -> np.ndarray:
        """(N, dim) float32 unit vectors for the faces of one image, in one inference call."""
        if len(faces) == 0:
            check_bgr_image(image_bgr)
            return np.zeros((0, self.dim), np.float32)
        return self.embed_aligned(self.align(image_bgr, faces))

    def embed_aligned(self, batch_bgr: np.ndarray) -> np.ndarray:
        """Embeddings of already aligned crops: (N, S, S, 3) uint8 BGR -> (N, dim) float32 unit vectors.

        For crops aligned elsewhere (e.g. Glint360k-style 112x112 datasets) or re-embedding
        stored crops after a model change.
        """
        b = np.asarray(batch_bgr)
        s = self.input_size
        if b.ndim != 4 or b.shape[1:] != (s, s, 3):
            raise ValueError(f"expected aligned crops of shape (N, {s}, {s}, 3), got {b.shape}")
        if b.dtype != np.uint8:
            raise ValueError(f"expected uint8 crops, got {b.dtype}")
        if len(b) == 0:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalize(self._run(b))

    def _run(self, b: np.ndarray) -> np.ndarray:
        """Raw model outputs. ORT sessions are thread-safe and no state is kept: no lock needed."""
        x = b[..., ::-1].astype(np.float32)  # BGR -> RGB
        x -= self.input_mean
        x /= self.input_std
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if self.fixed_batch is None:
            return np.asarray(self.session.run(None, {self.input_name: x})[0], np.float32)
        parts = []
        n = self.fixed_batch
        for start in range(0, len(x), n):
            chunk = x[start : start + n]
            real = len(chunk)
            if real < n:  # pad the last chunk to the fixed batch size
                chunk = np.concatenate([chunk, np.zeros((n - real, *chunk.shape[1:]), np.float32)])
            parts.append(np.asarray(self.session.run(None, {self.input_name: chunk})[0][:real], np.float32))
        return np.concatenate(parts)

    def __repr__(self) -> str:
        return f"ArcFaceOnnxEmbedder({self.name!r}, dim={self.dim}, threshold={self.default_threshold})"
