"""The InsightFace ``FaceAnalysis`` loop as a user would write it: the peer ``aas bench --peers`` times.

What ``insightface.app.FaceAnalysis.get`` does, with the same weights as the fast profile
(``scrfd_2.5g.onnx`` + ``mobilefacenet.onnx`` in the dev models folder; whatever fp32 files the
fast profile picks elsewhere, :func:`peer_weights`) and nothing of AAS in the loop:

1. SCRFD through ``insightface.model_zoo.get_model(path)``, ``prepare(ctx_id=-1,
   input_size=(S, S))``, ``detect(image, input_size=(S, S))``: the whole frame letterboxed
   into one S x S network input (S = 640, InsightFace's default, or 1280);
2. per face, a ``Face`` object and the recognition model's ``get(image, face)``: insightface's
   ``norm_crop`` on the 5 landmarks, then one ArcFace inference per face (``get_feat``).

ONNX Runtime sessions are opened the way insightface opens them (its defaults, CPU provider),
the detection threshold is insightface's default 0.5 (the fast profile's ``face_conf`` too).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# insightface's norm_crop calls skimage's deprecated SimilarityTransform.estimate (as in vision/embed).
warnings.filterwarnings("ignore", message=".*`estimate` is deprecated.*", category=FutureWarning)

DET_MODEL = "scrfd_2.5g.onnx"
REC_MODEL = "mobilefacenet.onnx"


@dataclass
class PeerResult:
    """What one call of the loop gives: per face box, score, landmarks and unit embedding."""

    boxes: np.ndarray  # (N, 4) xyxy float32
    scores: np.ndarray  # (N,)
    landmarks: np.ndarray  # (N, 5, 2)
    embeddings: np.ndarray  # (N, d) float32, L2-normalised (Face.normed_embedding)
    timings_ms: dict[str, float] = field(default_factory=dict)  # detect, embed, total

    def __len__(self) -> int:
        return len(self.boxes)


def peer_weights(models_dir: Path) -> tuple[str, str]:
    """(detector, recogniser) files the peer loop uses: the fast profile's own choice in
    ``models_dir``, as the fp32 file an int8 copy was made from (a user of the plain loop has
    the fp32 weights), so both sides always run the same weights. ``DET_MODEL`` / ``REC_MODEL``
    when the fast profile picks something the loop cannot run (no SCRFD / ArcFace ONNX)."""
    from aas_core.vision.profiles import resolve_profile

    cfg, _ = resolve_profile("fast", models_dir)
    det = cfg.face_model.replace("_int8.onnx", ".onnx") if cfg.face_backend == "scrfd" and cfg.face_model else DET_MODEL
    rec = cfg.embed_model.replace("_int8.onnx", ".onnx") if cfg.embedder == "arcface-onnx" and cfg.embed_model else REC_MODEL
    return det, rec


class FaceAnalysisLoop:
    """SCRFD at one letterbox size + per-face ``norm_crop`` + ArcFace, as ``FaceAnalysis.get`` runs them."""

    def __init__(self, models_dir: Path, det_size: int = 640, *, det_model: str = DET_MODEL,
                 rec_model: str = REC_MODEL, det_thresh: float = 0.5,
                 providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> None:
        from insightface.model_zoo import get_model

        models_dir = Path(models_dir)
        for f in (det_model, rec_model):
            if not (models_dir / f).is_file():
                raise FileNotFoundError(f"{models_dir / f} not found (the peer loop uses the fast profile's weights)")
        self.det_size = int(det_size)
        self.name = f"insightface det{self.det_size}"
        self.det = get_model(str(models_dir / det_model), providers=list(providers))
        self.det.prepare(ctx_id=-1, input_size=(self.det_size, self.det_size), det_thresh=det_thresh)
        self.rec = get_model(str(models_dir / rec_model), providers=list(providers))
        self.rec.prepare(ctx_id=-1)
        if getattr(self.det, "taskname", None) != "detection" or getattr(self.rec, "taskname", None) != "recognition":
            raise ValueError(f"insightface did not load {det_model} as a detector and {rec_model} as a recogniser")

    @property
    def dim(self) -> int:
        return int(self.rec.output_shape[-1])

    def run(self, image: np.ndarray) -> PeerResult:
        from insightface.app.common import Face

        t0 = time.perf_counter()
        bboxes, kpss = self.det.detect(image, input_size=(self.det_size, self.det_size))
        t1 = time.perf_counter()
        faces = []
        for i in range(bboxes.shape[0]):
            face = Face(bbox=bboxes[i, 0:4], kps=None if kpss is None else kpss[i], det_score=bboxes[i, 4])
            self.rec.get(image, face)  # norm_crop(image, face.kps) + get_feat: one inference per face
            faces.append(face)
        t2 = time.perf_counter()
        n = len(faces)
        return PeerResult(
            boxes=np.asarray(bboxes[:, :4], np.float32).reshape(-1, 4),
            scores=np.asarray(bboxes[:, 4], np.float32).reshape(-1),
            landmarks=(np.asarray(kpss, np.float32) if kpss is not None else np.full((n, 5, 2), np.nan, np.float32)),
            embeddings=(np.stack([f.normed_embedding for f in faces]).astype(np.float32) if n
                        else np.zeros((0, self.dim), np.float32)),
            timings_ms={"detect": (t1 - t0) * 1000, "embed": (t2 - t1) * 1000, "total": (t2 - t0) * 1000},
        )


def peer_loops(models_dir: Path, sizes: tuple[int, ...] = (640, 1280)) -> dict[str, FaceAnalysisLoop]:
    """The peers ``aas bench --peers`` runs: one loop per detector input size, with the fp32
    weights the fast profile runs (``peer_weights``)."""
    det_model, rec_model = peer_weights(Path(models_dir))
    loops = [FaceAnalysisLoop(models_dir, s, det_model=det_model, rec_model=rec_model) for s in sizes]
    return {lp.name: lp for lp in loops}
