"""Enrollment templates at classroom resolution.

Students enroll with clean portraits (faces of 150-400 px); the room camera sees the same
faces at 24-48 px, dim, noisy and JPEG-compressed. ArcFace embeddings of such faces drift
away from the portrait's (similarity to one's own portrait falls to 0.1-0.3 for 26-35 px
faces in dim, noisy frames: docs/EVALUATION.md "Hard benchmark"), so the gallery also holds
what the camera will see: each accepted portrait re-rendered the way a classroom camera
would image it (downscaled as a sensor integrates, then the camera's light, noise and
compression), embedded through the **same** crop / enhance / embed path as a face in a
snapshot.

The views are a generic camera model, not the benchmark's renderer: area downscaling to a
face width, optional gain + gamma (a dim room), Gaussian sensor noise, JPEG. Their noise is
seeded from the pixels, so a photo always gives the same templates.

These templates live apart from the portraits' (their own model name, ``<model>@classroom``)
and are matched with their own threshold: a small degraded face resembles other small
degraded faces more than portraits resemble each other, so the portrait threshold would let
impostors through (calibrated in ``benchmarks/recognition_levers.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from aas_core.vision.matching import Gallery
from aas_core.vision.types import Detections

#: Suffix of the model name under which classroom templates are stored and matched.
CLASSROOM_SUFFIX = "@classroom"


@dataclass(frozen=True)
class View:
    """One way the classroom camera may see a face."""

    face_px: float  # face box width after downscaling
    gain: float = 1.0
    gamma: float = 1.0
    noise_sigma: float = 0.0
    jpeg_quality: int = 90
    # Share of the face height hidden from below by a dark shape (a head in the row in front).
    # Not in DEFAULT_VIEWS: measured and not kept (docs/EVALUATION.md "Open-set rules and
    # occluded templates": 3 more crowded faces named, 3 statuses fewer in the plain lecture hall).
    cover_below: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.cover_below < 1.0:
            raise ValueError(f"cover_below must be in [0, 1), got {self.cover_below}")


#: Widths a back-to-middle row face has at 1080p (front rows are close enough to portraits),
#: each seen in fair light and in a dim, noisy frame.
DEFAULT_VIEWS: tuple[View, ...] = tuple(
    v for px in (24.0, 32.0, 44.0) for v in (
        View(px, jpeg_quality=80),
        View(px, gain=0.55, gamma=1.25, noise_sigma=6.0, jpeg_quality=65),
    ))


def classroom_model_name(model_name: str) -> str:
    return model_name + CLASSROOM_SUFFIX


def render_view(image: np.ndarray, face: Detections, view: View) -> tuple[np.ndarray, Detections]:
    """``image`` with its one ``face`` as the camera would see it: (small image, face moved there)."""
    if len(face) != 1:
        raise ValueError(f"render_view needs exactly one face, got {len(face)}")
    width = float(face.xyxy[0, 2] - face.xyxy[0, 0])
    if width <= 0:
        raise ValueError("face box has no width")
    s = min(1.0, view.face_px / width)
    # Keep a margin of the frame around the face: crop first so small photos are not shrunk
    # to nothing, then downscale with INTER_AREA (a sensor integrates light over each pixel).
    x1, y1, x2, y2 = face.xyxy[0]
    h, w = image.shape[:2]
    m = 1.5 * max(x2 - x1, y2 - y1)
    cx1, cy1 = int(max(0, x1 - m)), int(max(0, y1 - m))
    cx2, cy2 = int(min(w, x2 + m)), int(min(h, y2 + m))
    crop = image[cy1:cy2, cx1:cx2]
    if view.cover_below > 0:
        crop = crop.copy()
        fx1, fy1, fx2, fy2 = x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1
        top = fy2 - view.cover_below * (fy2 - fy1)
        cv2.rectangle(crop, (int(fx1 - 0.2 * (fx2 - fx1)), int(top)), (int(fx2 + 0.2 * (fx2 - fx1)), crop.shape[0]),
                      (40, 40, 40), -1)
    small = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                       interpolation=cv2.INTER_AREA)
    f = small.astype(np.float32)
    if view.gain != 1.0 or view.gamma != 1.0:
        f = np.power(np.clip(f / 255.0 * view.gain, 0, 1), view.gamma) * 255.0
    if view.noise_sigma > 0:
        seed = int.from_bytes(hashlib.sha256(small.tobytes()).digest()[:8], "little")
        f += np.random.default_rng(seed).normal(0, view.noise_sigma, f.shape).astype(np.float32)
    out = np.clip(f, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(view.jpeg_quality)])
    if ok:
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    moved = face.shifted(-cx1, -cy1)
    sx, sy = small.shape[1] / crop.shape[1], small.shape[0] / crop.shape[0]
    xyxy = moved.xyxy * np.array([sx, sy, sx, sy], np.float32)
    lms = None if moved.landmarks is None else moved.landmarks * np.array([sx, sy], np.float32)
    return out, Detections(xyxy, moved.confidence, lms, moved.source)


def aligned_input(pipeline, image: np.ndarray, faces: Detections) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The aligned (N, S, S, 3) crops an ArcFace-style embedder gets for ``faces`` in ``image``
    through the pipeline's crop / enhance path (``Pipeline.embed`` without the inference), for a
    same-size enhancer (CLAHE) or none."""
    crops = pipeline.crop_faces(image, faces)
    out = []
    for i in range(len(faces)):
        if crops.enhanced[i] is None:  # as Pipeline.embed: aligned from the frame itself
            out.append(pipeline.embedder.align(image, faces[i : i + 1]))
            continue
        local = faces[i : i + 1].shifted(-crops.offsets[i][0], -crops.offsets[i][1])
        out.append(pipeline.embedder.align(crops.enhanced[i], local))
    return np.concatenate(out) if out else np.zeros((0, 112, 112, 3), np.uint8)


def classroom_embeddings(pipeline, image: np.ndarray, face: Detections,  # type: ignore[no-untyped-def]
                         views: tuple[View, ...] = DEFAULT_VIEWS) -> np.ndarray:
    """(len(views), d) embeddings of ``face`` as the classroom camera sees it, through the
    pipeline's own crop / enhance / embed path (what a snapshot face goes through)."""
    emb = pipeline.embedder
    if not views:
        return np.zeros((0, emb.dim), np.float32)
    rendered = [render_view(image, face, v) for v in views]
    if hasattr(emb, "align") and hasattr(emb, "embed_aligned") and pipeline.enhancer is not None \
            and getattr(pipeline.enhancer, "scale", 1) == 1:
        # One batched inference for all views (ArcFace-style embedders behind a same-size
        # enhancer such as CLAHE): exactly what ``Pipeline.embed`` computes view by view.
        aligned = [aligned_input(pipeline, small, det) for small, det in rendered]
        return np.asarray(emb.embed_aligned(np.concatenate(aligned)), np.float32)
    out = []
    for small, det in rendered:
        out.append(pipeline.embed(small, det, pipeline.crop_faces(small, det))[0])
    return np.stack(out).astype(np.float32)


# --- matching ---------------------------------------------------------------------------------------

#: Per embedder (``Embedder.name``): the factor classroom-template similarities are multiplied
#: by before the one open-set threshold applies, so that impostor pairs pass it as rarely as
#: they pass it against portraits. Calibrated by ``benchmarks/recognition_levers.py`` on seeds
#: the benchmark does not report (docs/EVALUATION.md "Recognition levers"). An embedder not
#: listed gets no classroom templates: uncalibrated, they would let impostors through.
#: The int8 copy (`aas models quantize`) measured 0.692 (docs/EVALUATION.md "int8 in the product");
#: it keeps fp32's stricter 0.681, as copies calibrated on other photos vary a little.
CLASSROOM_SCALES: dict[str, float] = {"mobilefacenet": 0.681, "mobilefacenet_int8": 0.681, "w600k_mbf": 0.775}


def classroom_scale(model_name: str) -> float | None:
    stem = model_name.split(":")[-1].removesuffix(".onnx")
    return CLASSROOM_SCALES.get(model_name, CLASSROOM_SCALES.get(stem))


class ClassroomGallery(Gallery):
    """A roster gallery whose score for a student is the better of their portraits' and their
    classroom templates' (the latter scaled by the embedder's calibrated factor): everything
    downstream (top-k, threshold, one-to-one assignment, vetoes) sees one score per student."""

    def __init__(self, student_ids, embeddings: np.ndarray, model_name: str, *,  # type: ignore[no-untyped-def]
                 classroom_ids, classroom_embeddings: np.ndarray, scale: float, **kw) -> None:
        super().__init__(student_ids, embeddings, model_name, search="exact", **kw)
        if not 0 < scale <= 1:
            raise ValueError(f"classroom scale must be in (0, 1], got {scale}")
        unknown = set(map(str, classroom_ids)) - set(self.student_ids)
        if unknown:
            raise ValueError(f"classroom templates of students without portraits: {sorted(unknown)[:5]}")
        self.scale = float(scale)
        self._classroom = Gallery(classroom_ids, classroom_embeddings, model_name, search="exact")
        index = {sid: k for k, sid in enumerate(self.student_ids)}
        self._classroom_cols = np.array([index[sid] for sid in self._classroom.student_ids], np.intp)

    def __repr__(self) -> str:
        return (f"ClassroomGallery({len(self)} students, {self.n_samples} portrait samples + "
                f"{self._classroom.n_samples} classroom templates x {self.scale:.3f}, model={self.model_name!r})")

    @property
    def nbytes(self) -> int:
        return super().nbytes + self._classroom.nbytes

    def _exact_all(self, q: np.ndarray) -> np.ndarray:
        out = super()._exact_all(q)
        if len(self._classroom_cols):
            cls = self._classroom._exact_all(q) * self.scale
            out[:, self._classroom_cols] = np.maximum(out[:, self._classroom_cols], cls)
        return out


def roster_gallery(ids: list[str], embs: np.ndarray, model_name: str,
                   classroom: tuple[list[str], np.ndarray] | None = None) -> Gallery | None:
    """The gallery a roster is matched against: portraits, plus their classroom templates when
    there are any and the embedder has a calibrated scale. None when nobody is enrolled."""
    if not ids:
        return None
    scale = classroom_scale(model_name)
    if classroom is None or not classroom[0] or scale is None:
        return Gallery(ids, embs, model_name)
    keep = set(ids)
    rows = [k for k, sid in enumerate(classroom[0]) if sid in keep]
    if not rows:
        return Gallery(ids, embs, model_name)
    return ClassroomGallery(ids, embs, model_name, classroom_ids=[classroom[0][k] for k in rows],
                            classroom_embeddings=classroom[1][rows], scale=scale)
