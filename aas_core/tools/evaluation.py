"""Face-recognition evaluation on a labelled folder ``DIR/<identity>/*.jpg``.

Protocol (``aas eval faces``): a seeded fraction of identities is held back as strangers;
every other identity enrolls its first K photos and is probed with the rest. Reported per
model: rank-1 identification (closed set), TAR at FAR 1e-2 and 1e-3 (verification, from the
genuine/impostor score distributions), open-set identification and stranger rejection at the
threshold the product would use, and failure-to-detect count. Scores are the same ones the
product matches with (``Gallery``), so the figures describe what an instructor gets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aas_core.config import get_settings
from aas_core.media.decode import ImageError, read_image
from aas_core.services.enrollment import find_enrollment_face
from aas_core.tools.synthetic import list_identities
from aas_core.vision.matching import Gallery
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import PipelineConfig


def _arcface_model(models_dir: Path) -> str:
    """The embedder sessions use (the fast profile's choice: w600k_r50, else the int8 copy of
    mobilefacenet that `aas models quantize` made, unless stale, else mobilefacenet)."""
    from aas_core.vision.profiles import _FAST_EMBED, _first

    found = _first(_FAST_EMBED, Path(models_dir))
    return found[1] if found else "mobilefacenet.onnx"


def _face_model(models_dir: Path) -> str:
    return "det_10g.onnx" if (models_dir / "det_10g.onnx").is_file() else "scrfd_2.5g.onnx"


#: name -> (description, config factory). Detector and embedder are evaluated together.
EVAL_BACKENDS: dict[str, Any] = {
    "arcface": lambda d: PipelineConfig(flow="frame", face_backend="scrfd", face_model=_face_model(d),
                                        embedder="arcface-onnx", embed_model=_arcface_model(d), profile="eval"),
    "dlib": lambda d: PipelineConfig(flow="frame", face_backend="scrfd", face_model=_face_model(d),
                                     embedder="dlib-resnet", embed_model=None, profile="eval"),
    "dlib-hog": lambda d: PipelineConfig(flow="frame", face_backend="dlib-hog", face_model=None, face_conf=0.5,
                                         embedder="dlib-resnet", embed_model=None, profile="eval"),
}


@dataclass
class EvalReport:
    backend: str
    model: str
    detector: str
    identities: int
    strangers: int
    images: int
    failed_to_detect: int
    rank1: float
    tar_at_far: dict[str, float]
    thresholds_at_far: dict[str, float]
    threshold: float
    open_set_identification: float
    stranger_rejection: float
    ms_per_image: float
    genuine: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    impostor: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def summary(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "model": self.model, "detector": self.detector,
            "identities": self.identities, "strangers": self.strangers, "images": self.images,
            "failed_to_detect": self.failed_to_detect, "rank1": round(self.rank1, 4),
            "tar_at_far": {k: round(v, 4) for k, v in self.tar_at_far.items()},
            "thresholds_at_far": {k: round(v, 4) for k, v in self.thresholds_at_far.items()},
            "threshold": round(self.threshold, 4),
            "open_set_identification": round(self.open_set_identification, 4),
            "stranger_rejection": round(self.stranger_rejection, 4),
            "genuine_pairs": int(self.genuine.size), "impostor_pairs": int(self.impostor.size),
            "ms_per_image": round(self.ms_per_image, 1),
        }

    def text(self) -> str:
        t = self.tar_at_far
        return (f"{self.backend:<9} {self.model:<22} rank-1 {self.rank1:.3f}  TAR@FAR1e-2 {t['1e-2']:.3f}  "
                f"TAR@FAR1e-3 {t['1e-3']:.3f}  thr {self.threshold:.2f}: open-set id {self.open_set_identification:.3f}, "
                f"strangers rejected {self.stranger_rejection:.3f}  FTD {self.failed_to_detect}/{self.images}  "
                f"{self.ms_per_image:.0f} ms/img")


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) where the threshold lets through a fraction ``far`` of impostor pairs."""
    if impostor.size == 0 or genuine.size == 0:
        return float("nan"), float("nan")
    thr = float(np.quantile(impostor, 1.0 - far, method="higher"))
    return float(np.mean(genuine > thr)), thr


def evaluate_folder(directory: Path, backend: str, models_dir: Path, *, enroll_k: int = 5,
                    stranger_fraction: float = 0.2, seed: int = 0, threshold: float | None = None) -> EvalReport:
    cfg = EVAL_BACKENDS[backend](Path(models_dir))
    pipe = Pipeline(cfg, models_dir)
    settings = get_settings()
    ids = {k: v for k, v in list_identities(directory).items() if v}
    names = sorted(ids)
    if not names:
        raise ValueError(f"{directory.name or directory} holds no identity: it needs one folder per person "
                         "(DIR/<identity>/*.jpg) with photos in them")
    rng = np.random.default_rng(seed)
    n_str = int(round(stranger_fraction * len(names)))
    strangers = set(rng.permutation(names)[:n_str].tolist())
    t0 = time.perf_counter()
    n_images = ftd = 0
    gal_ids: list[str] = []
    gal_emb: list[np.ndarray] = []
    probe_ids: list[str] = []
    probe_emb: list[np.ndarray] = []
    for name in names:
        for k, path in enumerate(ids[name]):
            n_images += 1
            try:
                img = read_image(path)
            except ImageError:
                ftd += 1
                continue
            face, _, _ = find_enrollment_face(img, pipe, settings)
            if face is None:
                ftd += 1
                continue
            e = pipe.embedder.embed(img, face)[0]
            if name not in strangers and k < enroll_k:
                gal_ids.append(name)
                gal_emb.append(e)
            else:
                probe_ids.append(name)
                probe_emb.append(e)
    elapsed = (time.perf_counter() - t0) * 1000 / max(1, n_images)
    if not gal_emb:
        raise ValueError(f"no usable identity: no face was found in the first {enroll_k} photo(s) of any of the "
                         f"{len(names) - n_str} enrolled identities ({ftd} of {n_images} photos had no usable face)")
    if not probe_emb:
        raise ValueError(f"nothing to test: every usable photo was used for enrollment; identities need more than "
                         f"{enroll_k} photo(s) each (lower K or add photos)")
    gallery = Gallery(gal_ids, np.stack(gal_emb), pipe.embedder.name)
    scores = gallery.scores(np.stack(probe_emb), model_name=pipe.embedder.name)  # (P, S)
    students = list(gallery.student_ids)
    col = {s: i for i, s in enumerate(students)}
    known = np.array([p in col for p in probe_ids])
    truth = np.array([col.get(p, -1) for p in probe_ids])
    top = scores.argmax(axis=1)
    best = scores.max(axis=1)
    rank1 = float(np.mean(top[known] == truth[known])) if known.any() else float("nan")
    genuine = scores[known, truth[known]]
    mask = np.ones_like(scores, dtype=bool)
    mask[np.flatnonzero(known), truth[known]] = False
    impostor = scores[mask]
    thr = float(threshold if threshold is not None else pipe.threshold)
    tars, thrs = {}, {}
    for label, far in (("1e-2", 1e-2), ("1e-3", 1e-3)):
        tars[label], thrs[label] = tar_at_far(genuine, impostor, far)
    osi = float(np.mean((top[known] == truth[known]) & (best[known] >= thr))) if known.any() else float("nan")
    rej = float(np.mean(best[~known] < thr)) if (~known).any() else float("nan")
    return EvalReport(backend=backend, model=pipe.embedder.name, detector=pipe.face_detector.name,
                      identities=len(names) - n_str, strangers=n_str, images=n_images, failed_to_detect=ftd,
                      rank1=rank1, tar_at_far=tars, thresholds_at_far=thrs, threshold=thr,
                      open_set_identification=osi, stranger_rejection=rej, ms_per_image=elapsed,
                      genuine=genuine, impostor=impostor)


#: Fewer genuine pairs than this and a TAR is too uncertain to set a threshold by (95 % interval
#: wider than about +-10 points at TAR 0.8).
MIN_GENUINE_PAIRS = 100


def trust_notes(genuine_pairs: int, impostor_pairs: int, fars: tuple[float, ...] = (1e-2, 1e-3)) -> list[str]:
    """Warnings when a report rests on too few pairs to trust (empty: enough for every figure).

    An error rate measured as 0 on N pairs only says it is under about 3/N (95 % upper bound,
    the "rule of three"), so a FAR target of 1e-3 needs at least 3,000 impostor pairs before a
    clean result means anything; a "perfect" curve on 44 pairs means FAR < 7 %.
    """
    notes = []
    if genuine_pairs < MIN_GENUINE_PAIRS:
        notes.append(f"Only {genuine_pairs} genuine pairs (same person): the acceptance rates are rough; "
                     f"use at least {MIN_GENUINE_PAIRS} (more identities or more photos each).")
    for far in fars:
        need = int(np.ceil(3 / far))
        if impostor_pairs < need:
            bound = 3 / impostor_pairs if impostor_pairs else 1.0
            notes.append(f"Only {impostor_pairs} impostor pairs (different people): too few to measure a false "
                         f"accept rate of {far:g} (needs {need:,}); even a clean result only says it is under "
                         f"{min(bound, 1.0):.1%}.")
    return notes
