"""Multi-frame fusion: the burst of one snapshot -> one set of faces with fused embeddings.

Why: consecutive frames of a camera share the room and the people but not the sensor noise,
and a student who moves is blurred differently in each. One frame can leave a face a little
below the recognition threshold; the quality-weighted mean of its embeddings over the burst
averages the noise out and leans on its sharpest frames.

Pure steps, used by ``services.sessions`` on the per-frame ``PipelineResult``s
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

4. :func:`stack_region` (multi-frame denoising, optional in :func:`fuse_results`): a
   face seen in several frames is also embedded once from the *mean of its pixels* over the
   burst. Each frame's region around the face is registered to the best frame's by phase
   correlation (sub-pixel translation: camera shake, a student's small movement) and the
   registered regions are averaged with the same weights. Averaging before the network
   removes sensor noise that averaging embeddings cannot (the network is not linear, and
   noise moves a 26 px face's embedding far more than its pixels); the track's embedding is
   then the normalised sum of the two (fused embeddings + stacked face). Without the
   registration the 1-2 px jitter of a burst blurs a small face past recognition. Measured
   on the hard benchmark it names a few more faces in the dim room but moves statuses by 3 of
   672, so the session service leaves it off (docs/EVALUATION.md, "Recognition levers").

:func:`fuse_results` puts them together into one ``PipelineResult`` (without a match; the
caller matches the fused embeddings against the gallery once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from aas_core.vision.nms import box_iou
from aas_core.vision.pipeline import FaceCrops, PipelineResult
from aas_core.vision.quality import blur_score
from aas_core.vision.types import Detections

__all__ = ["SHARP_REF", "SIZE_REF", "FusedFaces", "associate", "face_weights", "fuse", "fuse_results",
           "stack_region"]

#: Variance of the Laplacian (face resized to 112 px, ``quality.blur_score``) at which a face
#: counts as fully sharp; the enrollment gate refuses samples below 15.
SHARP_REF = 100.0
#: Shorter face side (px) from which size no longer adds information at the embedder's 112 px.
SIZE_REF = 80.0
#: Lowest sharpness / size factor: a blurred or tiny face still counts a little (it may be
#: the only view of that student in the burst).
MIN_FACTOR = 0.05
#: Context around a face that is registered and stacked, in face sizes on every side (the
#: crop that alignment takes lies inside it, ``pipeline.context_crop``'s 0.5).
STACK_PAD = 1.0
#: A frame whose registration moves the face by more than this share of its size is left
#: out of the stack (the correlation failed, or the student moved more than a jitter).
STACK_MAX_SHIFT = 0.25
#: Least phase-correlation peak for a frame to count as the same view: the same face in the
#: jittered, noisy frames of the hard benchmark gives 0.78-1.0 (1st percentile 0.78), an
#: unrelated region of the same frames at most 0.095 (and then a random shift, small by chance
#: one time in five). A head turned between frames falls in between and is left out.
STACK_MIN_RESPONSE = 0.3

#: ``embed(items)``: one embedding per (image, single-face Detections) item, as a snapshot face
#: gets it (crop, enhancement, alignment, the embedder). ``Pipeline.embed_regions``.
EmbedRegions = Callable[[Sequence[tuple[np.ndarray, Detections]]], np.ndarray]


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


def stack_region(frames: Sequence[np.ndarray], members: dict[int, int], weights: Sequence[float],
                 ref_frame: int, ref_box: np.ndarray, *, pad: float = STACK_PAD,
                 max_shift: float = STACK_MAX_SHIFT,
                 min_response: float = STACK_MIN_RESPONSE) -> tuple[np.ndarray, tuple[int, int], int]:
    """The region of ``frames[ref_frame]`` around ``ref_box`` (``pad`` face sizes on every side)
    averaged over the frames in ``members`` (frame index -> anything; ``weights`` in the same
    order), each registered to the reference frame first. Returns ``(region uint8, (x0, y0) of
    the region in the frame, frames stacked)``.

    Registration: ``cv2.phaseCorrelate`` of the grey regions (Hann-windowed) gives each frame's
    sub-pixel translation; the frame is shifted back (bilinear) before it is added. A frame
    whose correlation peak is under ``min_response`` (not the same view) or whose shift exceeds
    ``max_shift`` of the face size is left out.
    """
    H, W = frames[ref_frame].shape[:2]
    x1, y1, x2, y2 = (float(v) for v in ref_box)
    fw, fh = max(1.0, x2 - x1), max(1.0, y2 - y1)
    X0, Y0 = max(0, int(x1 - pad * fw)), max(0, int(y1 - pad * fh))
    X1, Y1 = min(W, int(np.ceil(x2 + pad * fw))), min(H, int(np.ceil(y2 + pad * fh)))
    ref = frames[ref_frame][Y0:Y1, X0:X1].astype(np.float32)
    if ref.shape[0] < 4 or ref.shape[1] < 4:
        return frames[ref_frame][Y0:Y1, X0:X1].copy(), (X0, Y0), 1
    ref_grey = cv2.cvtColor(ref, cv2.COLOR_BGR2GRAY)
    window = cv2.createHanningWindow((ref_grey.shape[1], ref_grey.shape[0]), cv2.CV_32F)
    acc = np.zeros_like(ref)
    total, used = 0.0, 0
    for f, w in zip(members, weights):
        region = ref if f == ref_frame else frames[f][Y0:Y1, X0:X1].astype(np.float32)
        if f != ref_frame:
            if region.shape != ref.shape:
                continue  # a frame of another size is not the same camera view
            (dx, dy), response = cv2.phaseCorrelate(ref_grey, cv2.cvtColor(region, cv2.COLOR_BGR2GRAY), window)
            if not (response >= min_response and abs(dx) <= max_shift * fw and abs(dy) <= max_shift * fh):
                continue
            shift = np.float32([[1, 0, -dx], [0, 1, -dy]])
            region = cv2.warpAffine(region, shift, (region.shape[1], region.shape[0]), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT)
        w = max(float(w), 1e-6)
        acc += w * region
        total += w
        used += 1
    return np.clip(acc / total + 0.5, 0, 255).astype(np.uint8), (X0, Y0), used


def fuse_results(frames: Sequence[np.ndarray], results: Sequence[PipelineResult], *,
                 iou_threshold: float = 0.3,
                 embed_stacked: EmbedRegions | None = None) -> tuple[PipelineResult, FusedFaces, int]:
    """One ``PipelineResult`` for a burst from the per-frame results (which carry no match).

    Faces: each track's detection (box, score, landmarks) in its best frame; crops: the
    context crop (and enhanced crop) of that detection, so each face's evidence is its
    sharpest view; embeddings: fused. Returns ``(result, fused, stored)`` where ``stored``
    is the frame with the highest summed face weight: the one to keep as the snapshot image
    (the boxes of the other frames differ from it by the camera's jitter only).

    ``embed_stacked`` (``Pipeline.embed_regions``): every face seen in two frames or more is
    also embedded from its stacked region (:func:`stack_region`, around its best detection)
    and its embedding becomes the normalised sum of the fused and the stacked one. None: the
    fused embeddings alone.
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
    if embed_stacked is not None:
        many, items = [], []
        for t, members in enumerate(fused.members):
            if len(members) < 2:
                continue
            f0, i0 = int(fused.best_frame[t]), int(fused.best_index[t])
            region, (x0, y0), used = stack_region(frames, members, [weights[f][d] for f, d in members.items()], f0,
                                                  results[f0].faces.xyxy[i0])
            if used > 1:  # one frame alone is the best frame again, already in the fused embedding
                many.append(t)
                items.append((region, results[f0].faces[i0:i0 + 1].shifted(-float(x0), -float(y0))))
        if items:
            stacked = np.asarray(embed_stacked(items), np.float32)
            stacked /= np.maximum(np.linalg.norm(stacked, axis=1, keepdims=True), 1e-12)
            both = fused.embeddings[many] + stacked
            fused.embeddings[many] = both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)
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
