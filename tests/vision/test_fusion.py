"""Burst fusion (aas_core/vision/fusion.py): association of faces through frames, quality weights,
fused embeddings, and one PipelineResult for the burst."""

from __future__ import annotations

import cv2
import numpy as np

from aas_core.vision.fusion import associate, face_weights, fuse, fuse_results
from aas_core.vision.matching import Gallery
from aas_core.vision.pipeline import FaceCrops, PipelineResult
from aas_core.vision.types import Detections

DIM = 128


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_two_still_faces_keep_their_tracks_and_a_missing_one_keeps_its_own() -> None:
    a, b = np.array([100, 100, 150, 160], np.float32), np.array([300, 100, 350, 160], np.float32)
    jitter = np.array([1.5, -1.0, 1.5, -1.0], np.float32)
    frames = [
        np.stack([a, b]),
        np.stack([b + jitter, a - jitter]),  # detector order swapped: identity must not swap
        np.stack([a + jitter]),  # b turned away
        np.zeros((0, 4), np.float32),  # nobody detected
        np.stack([b, a]),  # b is back where it was
    ]
    tracks = associate(frames)
    assert tracks == [{0: 0, 1: 1, 2: 0, 4: 1}, {0: 1, 1: 0, 4: 0}]


def test_a_face_that_moved_too_far_is_a_new_track() -> None:
    a = np.array([[100, 100, 150, 160]], np.float32)
    far = a + np.array([40, 0, 40, 0], np.float32)  # IoU 0.11 with a: someone else
    assert associate([a, far]) == [{0: 0}, {1: 0}]
    near = a + np.array([10, 0, 10, 0], np.float32)  # IoU 0.67
    assert associate([a, near]) == [{0: 0, 1: 0}]


def test_fused_embedding_names_a_face_no_single_noisy_frame_names() -> None:
    """A student blurred or noisy in 3 of 5 frames: each frame alone falls below the threshold
    (or matches a look-alike); the quality-weighted fusion is named, and correctly."""
    rng = np.random.default_rng(3)
    gallery_vecs = _unit(rng.standard_normal((20, DIM)))
    gallery = Gallery([f"S{i}" for i in range(20)], gallery_vecs, "m")
    truth = gallery_vecs[7]
    threshold = 0.45

    def view(signal: float) -> np.ndarray:
        """A probe with cosine ~signal to the truth (the rest noise, as a degraded face gives)."""
        noise = rng.standard_normal(DIM)
        noise -= noise @ truth * truth
        return _unit(signal * truth + np.sqrt(1 - signal**2) * _unit(noise))

    embs = [view(0.40), view(0.25), view(0.42), view(0.22), view(0.24)]  # frames 1, 3, 4 degraded
    weights = [np.array([0.9]), np.array([0.2]), np.array([0.95]), np.array([0.15]), np.array([0.2])]
    single = [gallery.match(e[None], threshold=threshold, model_name="m").assigned[0] for e in embs]
    assert single == [None] * 5  # no frame alone is named
    fused = fuse([e[None] for e in embs], weights, [{f: 0 for f in range(5)}])
    assert abs(float(np.linalg.norm(fused.embeddings[0])) - 1) < 1e-5
    m = gallery.match(fused.embeddings, threshold=threshold, model_name="m")
    assert m.assigned == ["S7"]
    assert fused.best_frame[0] == 2 and fused.frames_seen[0] == 5
    # weights matter: the plain mean of the same frames is weaker than the weighted one
    plain = _unit(np.mean(embs, axis=0))
    assert float(fused.embeddings[0] @ truth) > float(plain @ truth)


def test_a_face_seen_once_is_kept_with_lower_quality() -> None:
    e = _unit(np.random.default_rng(0).standard_normal((2, DIM)))
    embs = [e, e[:1], e[:1], e[:1], e[:1]]  # face 1 only in frame 0
    weights = [np.array([0.8, 0.8])] + [np.array([0.8])] * 4
    tracks = [{f: 0 for f in range(5)}, {0: 1}]
    fused = fuse(embs, weights, tracks)
    assert len(fused) == 2 and list(fused.frames_seen) == [5, 1]
    np.testing.assert_allclose(fused.embeddings[1], e[1], atol=1e-6)  # its one view, unchanged
    assert fused.quality[1] < fused.quality[0] / 4


def test_weights_prefer_the_sharp_large_confident_face() -> None:
    rng = np.random.default_rng(1)
    frame = np.zeros((200, 400, 3), np.uint8)
    frame[20:120, 20:120] = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)  # sharp texture
    frame[20:120, 220:320] = cv2.GaussianBlur(frame[20:120, 20:120], (0, 0), 4)  # the same, blurred
    frame[150:170, 20:40] = frame[20:40, 20:40]  # small
    faces = Detections(np.array([[20, 20, 120, 120], [220, 20, 320, 120], [20, 150, 40, 170]], np.float32),
                       np.array([0.9, 0.9, 0.9], np.float32))
    w = face_weights(frame, faces)
    assert w[0] > 2 * w[1] and w[0] > 2 * w[2] and (w > 0).all()
    low = Detections(faces.xyxy[:1], np.array([0.3], np.float32))
    assert face_weights(frame, low)[0] < w[0]


def _result(frame: np.ndarray, boxes: list[list[float]], embs: np.ndarray, score: float = 0.9) -> PipelineResult:
    faces = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score, np.float32),
                       np.zeros((len(boxes), 5, 2), np.float32))
    crops = [frame[int(b[1]):int(b[3]), int(b[0]):int(b[2])].copy() for b in boxes]
    return PipelineResult(Detections.empty(), faces, FaceCrops(crops, [None] * len(crops),
                                                               np.array([b[:2] for b in boxes], np.float32).reshape(-1, 2)),
                          embs.astype(np.float32).reshape(-1, DIM), None, 0.4, "m", {"faces": 10.0, "total": 12.0})


def test_fuse_results_builds_one_snapshot_result_from_the_best_frames() -> None:
    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    frames = []
    for k in range(3):
        img = np.zeros((100, 300, 3), np.uint8)
        img[20:80, 20:80] = sharp if k == 1 else blurred  # face A is sharp in frame 1 only
        img[20:80, 200:260] = blurred if k == 1 else sharp  # face B is sharp except in frame 1
        frames.append(img)
    e = _unit(rng.standard_normal((2, DIM)))
    results = [_result(frames[k], [[20, 20, 80, 80], [200, 20, 260, 80]], e) for k in range(2)]
    results.append(_result(frames[2], [[20, 20, 80, 80]], e[:1]))  # B missed in frame 2
    result, fused, stored = fuse_results(frames, results)
    assert len(result) == 2 and result.match is None
    assert list(fused.best_frame) == [1, 0] and list(fused.frames_seen) == [3, 2]
    # each face's evidence crop is its sharpest view
    np.testing.assert_array_equal(result.crops.crops[0], sharp)
    np.testing.assert_array_equal(result.crops.crops[1], sharp)
    np.testing.assert_allclose(result.embeddings, e, atol=1e-5)
    assert stored in (0, 1)  # frame 2 lost a face: never the best overall
    assert result.timings_ms["faces"] == 30.0 and "fuse" in result.timings_ms
    assert result.faces.landmarks is not None and result.faces.landmarks.shape == (2, 5, 2)


def test_fuse_results_of_a_burst_without_faces() -> None:
    frames = [np.zeros((50, 50, 3), np.uint8)] * 2
    empty = PipelineResult(Detections.empty(), Detections.empty(), FaceCrops([], [], np.zeros((0, 2), np.float32)),
                           np.zeros((0, DIM), np.float32), None, 0.4, "m", {})
    result, fused, stored = fuse_results(frames, [empty, empty])
    assert len(result) == 0 and len(fused) == 0 and stored == 0 and result.embeddings.shape == (0, DIM)
