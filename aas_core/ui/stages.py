"""Pipeline stages cached per (image hash, the config fields that stage depends on).

Used by the Pipeline Inspector: moving the recognition-threshold slider re-runs only the
(cheap) match; changing the SR size threshold re-runs enhance + embed but not detection;
changing the detector re-runs everything after it. Each stage result carries the
milliseconds it took when it was computed.

The pipeline and the image are passed as ``_``-prefixed arguments (not hashed by
Streamlit); the explicit ``image_hash`` and ``key`` tuple are the cache key.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

if TYPE_CHECKING:
    from aas_core.vision.matching import Gallery, MatchResult
    from aas_core.vision.pipeline import FaceCrops, Pipeline
    from aas_core.vision.profiles import PipelineConfig
    from aas_core.vision.types import Detections

PERSON_FIELDS = ("flow", "person_backend", "person_model", "person_conf")
FACE_FIELDS = ("flow", "face_backend", "face_model", "face_conf", "min_face_px", "tile", "tile_overlap",
               "person_expand", "find_face_px", "back_rows")
ENHANCE_FIELDS = ("enhancer", "enhancer_model", "sr_below_px")
EMBED_FIELDS = ("embedder", "embed_model")


def image_hash(image: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def _pick(config: PipelineConfig, names: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    return tuple((n, getattr(config, n)) for n in names)


def stage_keys(config: PipelineConfig) -> dict[str, tuple]:
    """Cache key per stage: its own fields plus those of every stage it depends on."""
    persons = _pick(config, PERSON_FIELDS) if config.flow == "persons" else (("flow", config.flow),)
    faces = persons + _pick(config, FACE_FIELDS)
    enhance = faces + _pick(config, ENHANCE_FIELDS)
    embed = enhance + _pick(config, EMBED_FIELDS)
    return {"persons": persons, "faces": faces, "enhance": enhance, "embed": embed}


@dataclass
class StageOut:
    value: Any
    ms: float


def _timed(fn: Any, *args: Any) -> StageOut:
    t0 = time.perf_counter()
    out = fn(*args)
    return StageOut(out, (time.perf_counter() - t0) * 1000)


@st.cache_data(show_spinner="Detecting persons…", max_entries=16)
def persons_stage(image_hash: str, key: tuple, _pipeline: Pipeline, _image: np.ndarray) -> StageOut:
    return _timed(_pipeline.detect_persons, _image)


@st.cache_data(show_spinner="Detecting faces…", max_entries=16)
def faces_stage(image_hash: str, key: tuple, _pipeline: Pipeline, _image: np.ndarray,
                _persons: Detections) -> StageOut:
    return _timed(_pipeline.detect_faces, _image, _persons)


@st.cache_data(show_spinner="Cropping and enhancing faces…", max_entries=16)
def enhance_stage(image_hash: str, key: tuple, _pipeline: Pipeline, _image: np.ndarray,
                  _faces: Detections) -> StageOut:
    return _timed(_pipeline.crop_faces, _image, _faces)


@st.cache_data(show_spinner="Embedding faces…", max_entries=16)
def embed_stage(image_hash: str, key: tuple, _pipeline: Pipeline, _image: np.ndarray, _faces: Detections,
                _crops: FaceCrops) -> StageOut:
    return _timed(_pipeline.embed, _image, _faces, _crops)


@dataclass
class StagedResult:
    persons: Detections
    faces: Detections
    crops: FaceCrops
    embeddings: np.ndarray
    match: MatchResult | None
    threshold: float
    model_name: str
    timings_ms: dict[str, float]

    def as_pipeline_result(self):  # -> PipelineResult
        from aas_core.vision.pipeline import PipelineResult

        return PipelineResult(self.persons, self.faces, self.crops, self.embeddings, self.match, self.threshold,
                              self.model_name, dict(self.timings_ms))


def run_staged(pipeline: Pipeline, image: np.ndarray, gallery: Gallery | None, threshold: float | None = None,
               img_hash: str | None = None) -> StagedResult:
    """``Pipeline.run`` stage by stage through the caches above (match is never cached: it is cheap)."""
    h = img_hash or image_hash(image)
    keys = stage_keys(pipeline.config)
    p = persons_stage(h, keys["persons"], pipeline, image)
    f = faces_stage(h, keys["faces"], pipeline, image, p.value)
    c = enhance_stage(h, keys["enhance"], pipeline, image, f.value)
    e = embed_stage(h, keys["embed"], pipeline, image, f.value, c.value)
    thr = pipeline.threshold if threshold is None else float(threshold)
    t0 = time.perf_counter()
    match = pipeline.match(e.value, gallery, thr)
    t_match = (time.perf_counter() - t0) * 1000
    timings = {"persons": p.ms, "faces": f.ms, "enhance": c.ms, "embed": e.ms, "match": t_match}
    timings["total"] = sum(timings.values())
    return StagedResult(p.value, f.value, c.value, e.value, match, thr, pipeline.embedder.name, timings)


# --- galleries ---------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=8)
def _gallery(url: str, _user: Any, username: str, course_code: str, model_name: str,
             version: tuple[int, ...]) -> Any:
    from aas_core.services import in_transaction, privacy

    return in_transaction(url, privacy.course_matching_gallery, _user, course_code, model_name)


def course_gallery(url: str, user: Any, course_code: str, model_name: str) -> Gallery | None:
    """The course roster's gallery for one embedder (portraits and classroom templates), read
    through the access-checked ``privacy`` service (cached per user until a sample or template
    is added or removed)."""
    from aas_core.services import in_transaction, privacy

    version = in_transaction(url, privacy.course_gallery_version, user, course_code, model_name)
    return _gallery(url, user, user.username, course_code, model_name, version)
