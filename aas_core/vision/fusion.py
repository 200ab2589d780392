"""Multi-frame fusion: the burst of one snapshot -> one set of faces with fused embeddings.

Why: consecutive frames of a camera share the room and the people but not the sensor noise,
and a student who moves is blurred differently in each. One frame can leave a face a little
below the recognition threshold; the quality-weighted mean of its embeddings over the burst
averages the noise out and leans on its sharpest frames.

Three pure steps, used by ``services.sessions`` on the per-frame ``PipelineResult``s
(detection and embedding, no matching):

1. :func:`associate` follows faces through the frames. Students sit still for the second or
   two a burst lasts, so each frame's boxes are matched to the tracks so far by IoU with a
   one-to-one assignment (``scipy.optimize.linear_sum_assignment``), pairs below
   ``iou_threshold`` refused; a face not matched starts a track. A face missing in some
   frames (turned away, blurred past the detector) keeps its track.
2. :func:`face_weights`: detector score x sharpness (variance of the Laplacian of the face,
   ``quality.blur_score``, relative to :data:`SHARP_REF` and clipped) x size (shorter side
   relative to :data:`SIZE_REF`, clipped), per detection.
3. :func:`fuse`: per track, the weighted sum of its L2-normalised embeddings, renormalised.
   Its ``quality`` is the sum of its weights over the number of frames in the burst, so a
   face seen in one frame of five keeps its embedding (it is not dropped: the student may
   have turned away) but has a fifth of the quality of one seen sharp in all five.

:func:`fuse_results` puts them together into one ``PipelineResult`` (without a match; the
caller matches the fused embeddings against the gallery once).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from aas_core.vision.nms import box_iou
from aas_core.vision.pipeline import FaceCrops, PipelineResult
from aas_core.vision.quality import blur_score
from aas_core.vision.types import Detections

__all__ = ["SHARP_REF", "SIZE_REF", "FusedFaces", "associate", "face_weights", "fuse", "fuse_results"]

#: Variance of the Laplacian (face resized to 112 px, ``quality.blur_score``) at which a face
#: counts as fully sharp; the enrollment gate refuses samples below 15.
SHARP_REF = 100.0
#: Shorter face side (px) from which size no longer adds information at the embedder's 112 px.
SIZE_REF = 80.0
#: Lowest sharpness / size factor: a blurred or tiny face still counts a little (it may be
#: the only view of that student in the burst).
MIN_FACTOR = 0.05


@dataclass
class FusedFaces:
    """The tracks of one burst, as parallel arrays (one row per track).

    ``members[t]``: frame index -> detection index of track ``t`` in that frame.
    ``best_frame[t]`` / ``best_index[t]``: where its highest-weight detection is.
    ``quality[t]``: sum of its weights / frames in the burst (0..1).
    """

    embeddings: np.ndarray  # (T, d) float32, L2-normalised
    quality: np.ndarray  # (T,) float32
    frames_seen: np.ndarray  # (T,) int
    best_frame: np.ndarray  # (T,) int
    best_index: np.ndarray  # (T,) int
    members: list[dict[int, int]] = field(default_factory=list)
    n_frames: int = 1

    def __len__(self) -> int:
        return len(self.embeddings)


def associate(boxes: Sequence[np.ndarray], iou_threshold: float = 0.3) -> list[dict[int, int]]:
    """Tracks through the frames of a burst: a list of {frame index: detection index}.

    Each frame's boxes (``(N_f, 4)`` xyxy) are assigned one-to-one to the tracks so far,
    compared with each track's box in the last frame it was seen in (the face barely moves,
    and a face missing for a frame is found again where it was). Tracks are ordered by first
    appearance, detections within a frame in their order.
    """
    tracks: list[dict[int, int]] = []
    last: list[np.ndarray] = []  # each track's most recent box
    for f, b in enumerate(boxes):
        b = np.asarray(b, np.float32).reshape(-1, 4)
        taken: set[int] = set()
        if tracks and len(b):
            iou = box_iou(np.stack(last), b)
            rows, cols = linear_sum_assignment(-iou)
            for t, d in zip(rows, cols):
                if iou[t, d] >= iou_threshold:
                    tracks[t][f] = int(d)
                    last[t] = b[d]
                    taken.add(int(d))
        for d in range(len(b)):
            if d not in taken:
                tracks.append({f: d})
                last.append(b[d])
    return tracks


def face_weights(frame: np.ndarray, faces: Detections, *, sharp_ref: float = SHARP_REF,
                 size_ref: float = SIZE_REF) -> np.ndarray:
    """(N,) weight of each detection of ``frame``: score x sharpness x size (see the module doc)."""
    if not len(faces):
        return np.zeros(0, np.float32)
    sharp = np.array([blur_score(frame, box) for box in faces.xyxy], np.float32)
    side = np.minimum(faces.widths, faces.heights)
    s = np.clip(sharp / sharp_ref, MIN_FACTOR, 1.0)
    z = np.clip(side / size_ref, MIN_FACTOR, 1.0)
    return (np.clip(faces.confidence, 0.0, 1.0) * s * z).astype(np.float32)


def fuse(embeddings: Sequence[np.ndarray], weights: Sequence[np.ndarray], tracks: Sequence[dict[int, int]],
         dim: int | None = None) -> FusedFaces:
    """Quality-weighted mean of each track's L2-normalised embeddings, renormalised."""
    n_frames = len(embeddings)
    if dim is None:
        dim = next((e.shape[1] for e in embeddings if np.ndim(e) == 2), 0)
    out = np.zeros((len(tracks), dim), np.float32)
    quality = np.zeros(len(tracks), np.float32)
    seen = np.zeros(len(tracks), int)
    best_f = np.zeros(len(tracks), int)
    best_i = np.zeros(len(tracks), int)
    for t, members in enumerate(tracks):
        acc = np.zeros(dim, np.float64)
        best_w = -1.0
        for f, d in members.items():
            e = np.asarray(embeddings[f][d], np.float64)
            e = e / max(np.linalg.norm(e), 1e-12)
            # a weight of 0 (score 0) must not erase the only view of a face: keep a floor
            w = max(float(weights[f][d]), 1e-6)
            acc += w * e
            quality[t] += float(weights[f][d])
            if w > best_w:
                best_w, best_f[t], best_i[t] = w, f, d
        norm = np.linalg.norm(acc)
        out[t] = acc / norm if norm > 0 else acc
        seen[t] = len(members)
    quality /= max(n_frames, 1)
    return FusedFaces(out, quality, seen, best_f, best_i, [dict(m) for m in tracks], n_frames)


def fuse_results(frames: Sequence[np.ndarray], results: Sequence[PipelineResult], *,
                 iou_threshold: float = 0.3) -> tuple[PipelineResult, FusedFaces, int]:
    """One ``PipelineResult`` for a burst from the per-frame results (which carry no match).

    Faces: each track's detection (box, score, landmarks) in its best frame; crops: the
    context crop (and enhanced crop) of that detection, so each face's evidence is its
    sharpest view; embeddings: fused. Returns ``(result, fused, stored)`` where ``stored``
    is the frame with the highest summed face weight: the one to keep as the snapshot image
    (the boxes of the other frames differ from it by the camera's jitter only).
    """
    if not frames or len(frames) != len(results):
        raise ValueError(f"{len(frames)} frames for {len(results)} results")
    t0 = time.perf_counter()
    weights = [face_weights(img, r.faces) for img, r in zip(frames, results)]
    tracks = associate([r.faces.xyxy for r in results], iou_threshold)
    dim = max((r.embeddings.shape[1] for r in results if r.embeddings.ndim == 2), default=0)
    fused = fuse([r.embeddings for r in results], weights, tracks, dim)
    stored = int(np.argmax([float(w.sum()) for w in weights])) if any(len(w) for w in weights) else 0
    picks = [(int(f), int(i)) for f, i in zip(fused.best_frame, fused.best_index)]
    with_lm = all(r.faces.landmarks is not None for r in results)
    if picks:
        faces = Detections(
            np.stack([results[f].faces.xyxy[i] for f, i in picks]),
            np.array([results[f].faces.confidence[i] for f, i in picks], np.float32),
            np.stack([results[f].faces.landmarks[i] for f, i in picks]) if with_lm else None,  # type: ignore[index]
            np.array([results[f].faces.source[i] for f, i in picks], dtype=object))
        offsets = np.stack([results[f].crops.offsets[i] for f, i in picks]).astype(np.float32)
    else:
        faces = Detections.empty(with_landmarks=with_lm)
        offsets = np.zeros((0, 2), np.float32)
    crops = FaceCrops([results[f].crops.crops[i] for f, i in picks], [results[f].crops.enhanced[i] for f, i in picks],
                      offsets)
    timings: dict[str, float] = {}
    for r in results:
        for k, v in r.timings_ms.items():
            timings[k] = timings.get(k, 0.0) + v
    timings["fuse"] = (time.perf_counter() - t0) * 1000
    timings["total"] = timings.get("total", 0.0) + timings["fuse"]
    first = results[stored]
    result = PipelineResult(first.persons, faces, crops, fused.embeddings, None, first.threshold, first.model_name,
                            timings)
    return result, fused, stored
