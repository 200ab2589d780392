"""The recognition pipeline: persons -> faces -> enhance -> embed -> match, stage by stage.

Every stage is a method with its own output so the Pipeline Inspector can show (and cache)
each one; ``run`` chains them and records per-stage milliseconds. Backends are loaded once
(cached in ``backends``) and picked by name from a :class:`PipelineConfig`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aas_core.vision import backends
from aas_core.vision.faces import flows
from aas_core.vision.matching import Gallery, MatchResult
from aas_core.vision.profiles import PipelineConfig
from aas_core.vision.templates import aligned_input
from aas_core.vision.types import Detections, Embedder, Enhancer, FaceDetector, PersonDetector


@dataclass
class FaceCrops:
    """Per face: a context crop (what the Inspector shows) and, if enhanced, the enhanced crop."""

    crops: list[np.ndarray]
    enhanced: list[np.ndarray | None]
    offsets: np.ndarray  # (N, 2) top-left of each crop in the frame


@dataclass
class PipelineResult:
    persons: Detections
    faces: Detections
    crops: FaceCrops
    embeddings: np.ndarray  # (N, d) L2-normalised
    match: MatchResult | None
    threshold: float
    model_name: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.faces)

    def face_rows(self) -> list[dict[str, object]]:
        """One row per face for tables: box, score, source, size, best matches."""
        rows = []
        for i in range(len(self.faces)):
            x1, y1, x2, y2 = (float(v) for v in self.faces.xyxy[i])
            row: dict[str, object] = {
                "face": i, "x1": round(x1), "y1": round(y1), "size_px": round(min(x2 - x1, y2 - y1)),
                "det_score": round(float(self.faces.confidence[i]), 3), "source": str(self.faces.source[i]),
                "enhanced": self.crops.enhanced[i] is not None,
            }
            if self.match is not None:
                row["student"] = self.match.assigned[i]
                row["similarity"] = round(float(self.match.assigned_similarity[i]), 3)
                for k, (sid, sim) in enumerate(zip(self.match.top_ids[i], self.match.top_similarity[i]), 1):
                    row[f"top{k}"] = f"{sid} ({sim:.2f})" if sid is not None else ""
            rows.append(row)
        return rows


class Pipeline:
    """A configured pipeline. Cheap to build: models come from the backends' caches."""

    def __init__(self, config: PipelineConfig, models_dir: Path, providers: tuple[str, ...] | None = None) -> None:
        self.config = config
        self.models_dir = Path(models_dir)
        self.providers = providers

    # --- backends (lazy, cached process-wide) --------------------------------------------------
    @property
    def person_detector(self) -> PersonDetector:
        c = self.config
        return backends.load_person_detector(c.person_backend, self.models_dir, model=c.person_model)

    @property
    def face_detector(self) -> FaceDetector:
        c = self.config
        return backends.load_face_detector(c.face_backend, self.models_dir, model=c.face_model)

    @property
    def enhancer(self) -> Enhancer | None:
        c = self.config
        if not c.enhancer:
            return None
        return backends.load_enhancer(c.enhancer, self.models_dir, model=c.enhancer_model)

    @property
    def embedder(self) -> Embedder:
        c = self.config
        return backends.load_embedder(c.embedder, self.models_dir, model=c.embed_model)

    @property
    def threshold(self) -> float:
        if self.config.threshold is not None:
            return float(self.config.threshold)
        return float(getattr(self.embedder, "default_threshold", 0.4))

    def warm_up(self) -> list[str]:
        """Load every backend now; returns their names (for the UI's 'models loaded' line)."""
        names = []
        if self.config.flow == "persons":
            names.append(self.person_detector.name)
        names.append(self.face_detector.name)
        if self.enhancer is not None:
            names.append(self.enhancer.name)
        names.append(self.embedder.name)
        return names

    # --- stages ---------------------------------------------------------------------------------
    def detect_persons(self, image: np.ndarray) -> Detections:
        _check_image(image)
        if self.config.flow != "persons":
            return Detections.empty()
        return self.person_detector.detect(image, conf_threshold=self.config.person_conf)

    def detect_faces(self, image: np.ndarray, persons: Detections | None = None) -> Detections:
        _check_image(image)
        c = self.config
        det = self.face_detector
        if c.flow == "persons":
            persons = persons if persons is not None else self.detect_persons(image)
            return flows.detect_faces_in_persons(image, persons, det, expand=c.person_expand, conf=c.face_conf,
                                                 min_face_px=c.min_face_px)
        if c.flow == "tiled":
            return flows.detect_faces_tiled(image, det, tile=c.tile, overlap=c.tile_overlap, conf=c.face_conf,
                                            min_face_px=c.min_face_px)
        if c.flow == "schedule":
            return flows.detect_faces_scheduled(image, det, find_face_px=c.find_face_px, conf=c.face_conf,
                                                min_face_px=c.min_face_px, back_rows=c.back_rows)
        faces = det.detect(image, conf_threshold=c.face_conf)
        keep = np.minimum(faces.widths, faces.heights) >= c.min_face_px
        return faces[np.flatnonzero(keep)]

    def crop_faces(self, image: np.ndarray, faces: Detections) -> FaceCrops:
        """Context crops of every face, enhanced where the face is small (or always for CLAHE)."""
        enh = self.enhancer
        crops, enhanced, offsets = [], [], []
        for i in range(len(faces)):
            crop, off = context_crop(image, faces.xyxy[i])
            crops.append(crop)
            offsets.append(off)
            small = min(faces.widths[i], faces.heights[i]) < self.config.sr_below_px
            if enh is not None and (small or getattr(enh, "scale", 1) == 1):
                enhanced.append(enh.enhance(crop))
            else:
                enhanced.append(None)
        return FaceCrops(crops, enhanced, np.asarray(offsets, np.float32).reshape(-1, 2))

    def embed(self, image: np.ndarray, faces: Detections, crops: FaceCrops | None = None) -> np.ndarray:
        """Embeddings (N, d). Enhanced faces are embedded from their enhanced crop."""
        emb = self.embedder
        out = np.zeros((len(faces), emb.dim), np.float32)
        if not len(faces):
            return out
        plain = [i for i in range(len(faces)) if crops is None or crops.enhanced[i] is None]
        if plain:
            out[plain] = emb.embed(image, faces[plain])
        enhanced = [i for i in range(len(faces)) if crops is not None and crops.enhanced[i] is not None]
        if not enhanced:
            return out
        assert crops is not None
        # Each enhanced face lives in its own (upscaled) crop: map its box/landmarks there.
        local = []
        for i in enhanced:
            scale = crops.enhanced[i].shape[1] / crops.crops[i].shape[1]  # type: ignore[union-attr]
            f = faces[i].shifted(-crops.offsets[i][0], -crops.offsets[i][1])
            local.append(Detections(f.xyxy * scale, f.confidence,
                                    None if f.landmarks is None else f.landmarks * scale, f.source))
        if hasattr(emb, "align") and hasattr(emb, "embed_aligned"):
            # ArcFace-style: align every enhanced crop, then one batched inference.
            aligned = np.concatenate([emb.align(crops.enhanced[i], d) for i, d in zip(enhanced, local)])
            out[enhanced] = emb.embed_aligned(aligned)
        else:
            for i, d in zip(enhanced, local):
                out[i] = emb.embed(crops.enhanced[i], d)[0]
        return out

    def embed_regions(self, items: Sequence[tuple[np.ndarray, Detections]]) -> np.ndarray:
        """(len(items), d): one embedding per ``(image, one face)`` item, each through the crop /
        enhance / align path of a snapshot face (``embed``); an ArcFace-style embedder behind a
        same-size enhancer (CLAHE) or none runs them all as one batch. For burst stacking
        (``vision.fusion``), whose items are small regions of different sizes."""
        emb = self.embedder
        if not items:
            return np.zeros((0, emb.dim), np.float32)
        if hasattr(emb, "align") and hasattr(emb, "embed_aligned") and getattr(self.enhancer, "scale", 1) == 1:
            return emb.embed_aligned(np.concatenate([aligned_input(self, img, det) for img, det in items]))
        return np.concatenate([self.embed(img, det, self.crop_faces(img, det)) for img, det in items])

    def match(self, embeddings: np.ndarray, gallery: Gallery | None, threshold: float | None = None) -> MatchResult | None:
        if gallery is None or len(gallery) == 0:
            return None
        return gallery.match(embeddings, threshold=self.threshold if threshold is None else threshold,
                             model_name=self.embedder.name)

    def run(self, image: np.ndarray, gallery: Gallery | None = None, threshold: float | None = None) -> PipelineResult:
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        persons = self.detect_persons(image)
        t["persons"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        faces = self.detect_faces(image, persons)
        t["faces"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        crops = self.crop_faces(image, faces)
        t["enhance"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        embs = self.embed(image, faces, crops)
        t["embed"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        thr = self.threshold if threshold is None else threshold
        match = self.match(embs, gallery, thr)
        t["match"] = (time.perf_counter() - t0) * 1000
        t["total"] = sum(t.values())
        return PipelineResult(persons, faces, crops, embs, match, thr, self.embedder.name, t)


def context_crop(image: np.ndarray, box: np.ndarray, margin: float = 0.5) -> tuple[np.ndarray, tuple[int, int]]:
    """The face plus ``margin`` of its size on every side (alignment needs the context)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mw, mh = (x2 - x1) * margin, (y2 - y1) * margin
    cx1, cy1 = max(0, int(x1 - mw)), max(0, int(y1 - mh))
    cx2, cy2 = min(w, int(np.ceil(x2 + mw))), min(h, int(np.ceil(y2 + mh)))
    return image[cy1:cy2, cx1:cx2].copy(), (cx1, cy1)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"expected a BGR image (H, W, 3); got {getattr(image, 'shape', type(image))}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels; got {image.dtype}")
