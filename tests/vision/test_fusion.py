"""Burst fusion (aas_core/vision/fusion.py): association of faces through frames, quality weights,
fused embeddings, burst stacking, and one PipelineResult for the burst."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aas_core.vision.fusion import associate, face_weights, fuse, fuse_results, stack_region
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


def _shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _noisy(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_stack_region_registers_jittered_frames_and_averages_their_noise_out(load_image) -> None:  # type: ignore[no-untyped-def]
    """Five frames of one scene, each shifted by a sub-pixel jitter and with its own noise: the
    stacked region is much closer to the clean reference frame than any one frame, and closer
    than the same frames averaged without registration (which blurs)."""
    clean = cv2.resize(load_image("group/kids_group8.jpg"), (320, 240), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    shifts = [(0.0, 0.0), (1.4, -0.8), (-1.1, 1.3), (0.7, 1.6), (-1.5, -0.6)]
    frames = [_noisy(_shifted(clean, dx, dy), rng, 12.0) for dx, dy in shifts]
    box = np.array([130, 90, 190, 150], np.float32)
    members = {f: 0 for f in range(5)}
    region, (x0, y0), used = stack_region(frames, members, [1.0] * 5, 0, box)
    assert used == 5 and (x0, y0) == (70, 30) and region.shape == (180, 180, 3) and region.dtype == np.uint8
    ref = clean[y0:y0 + 180, x0:x0 + 180].astype(np.float32)
    inner = (slice(10, -10), slice(10, -10))  # away from the reflected borders of the shifts

    def rmse(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a.astype(np.float32)[inner] - ref[inner]) ** 2)))

    one = rmse(frames[0][y0:y0 + 180, x0:x0 + 180])
    unregistered = rmse(np.mean([f[y0:y0 + 180, x0:x0 + 180].astype(np.float32) for f in frames], axis=0))
    stacked = rmse(region)
    assert stacked < 0.6 * one
    assert stacked < 0.8 * unregistered


def test_stack_region_leaves_out_a_frame_that_does_not_register() -> None:
    """A frame in which the region shows something else (the student stood up, another face)
    is not averaged in; only the frames that register are counted."""
    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8), (0, 0), 2)
    other = cv2.GaussianBlur(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8), (0, 0), 2)
    frames = [scene, _shifted(scene, 0.5, 0.5), _shifted(scene, 40, 25)]
    region, _, used = stack_region(frames, {0: 0, 1: 0, 2: 0}, [1.0, 1.0, 1.0], 0,
                                   np.array([80, 80, 120, 120], np.float32))
    assert used == 2
    frames[2] = other
    _, _, used = stack_region(frames, {0: 0, 1: 0, 2: 0}, [1.0, 1.0, 1.0], 0, np.array([80, 80, 120, 120], np.float32))
    assert used == 2


def test_fuse_results_adds_each_multi_frame_face_its_stacked_embedding() -> None:
    """Faces seen in two frames or more get one stacked region each (around their best
    detection, in that frame's coordinates shifted to the region), embedded in one call; the
    result is the normalised sum of fused and stacked. A face seen once keeps its embedding."""
    rng = np.random.default_rng(4)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (120, 300, 3), dtype=np.uint8), (0, 0), 1.5)
    frames = [_noisy(_shifted(scene, dx, 0.0), rng, 3.0) for dx in (0.0, 0.6, 1.1)]  # one view, jittered
    e = _unit(rng.standard_normal((2, DIM)))
    results = [_result(frames[0], [[20, 20, 60, 60], [200, 20, 240, 60]], e),
               _result(frames[1], [[20, 20, 60, 60]], e[:1]),
               _result(frames[2], [[21, 20, 61, 60]], e[:1])]
    calls = []
    stacked_vec = _unit(rng.standard_normal((1, DIM)))

    def embed(items):  # type: ignore[no-untyped-def]
        calls.append(items)
        return stacked_vec * 3.0  # not normalised: fuse_results normalises

    result, fused, _ = fuse_results(frames, results, embed_stacked=embed)
    assert len(calls) == 1 and len(calls[0]) == 1  # face B was seen once: not stacked
    region, det = calls[0][0]
    assert region.shape == (100, 100, 3) and len(det) == 1
    f0, i0 = int(fused.best_frame[0]), int(fused.best_index[0])
    x1 = float(results[f0].faces.xyxy[i0, 0])
    assert abs(float(det.xyxy[0, 0]) - (x1 - max(0, int(x1 - 40)))) < 1e-4
    want = _unit(e[0] + stacked_vec[0])
    np.testing.assert_allclose(result.embeddings[0], want, atol=1e-5)
    np.testing.assert_allclose(result.embeddings[1], e[1], atol=1e-5)
    plain, _, _ = fuse_results(frames, results)
    np.testing.assert_allclose(plain.embeddings, e, atol=1e-5)
    # frames that do not show the same view (here: unrelated noise) stack nothing: no call
    calls.clear()
    noise = [rng.integers(0, 255, (120, 300, 3), dtype=np.uint8) for _ in range(3)]
    alone, _, _ = fuse_results(noise, results, embed_stacked=embed)
    assert calls == [] and np.allclose(alone.embeddings, e, atol=1e-5)


@pytest.fixture(scope="module")
def fast_pipe(models_dir):  # type: ignore[no-untyped-def]
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import resolve_profile

    return Pipeline(resolve_profile("fast", models_dir)[0], models_dir)


def test_stacking_brings_a_small_noisy_face_closer_to_its_portrait(fast_pipe, face_files) -> None:  # type: ignore[no-untyped-def]
    """Real weights: a student's face at 30 px in dim light, five jittered frames with sensor
    noise (sigma 10). The burst's embedding with the stacked face is closer to the student's
    portrait than the fused frame embeddings alone, for every face and noise draw here."""
    from aas_core.vision.templates import View, render_view

    pipe = fast_pipe
    gains = []
    for path in face_files("glint")[:21:10]:
        img = cv2.imread(str(path))
        found = pipe.face_detector.detect(img, conf_threshold=0.5)
        face = found[int(np.argmax(found.area))]
        portrait = pipe.embed(img, face, pipe.crop_faces(img, face))[0]
        small, det = render_view(img, face, View(30.0, gain=0.6, gamma=1.2))
        for seed in range(2):
            rng = np.random.default_rng(seed)
            frames, results = [], []
            for k in range(5):
                dx, dy = rng.normal(0, 1.0, 2) if k else (0.0, 0.0)
                frame = _noisy(_shifted(small, float(dx), float(dy)), rng, 10.0)
                d = det.shifted(float(dx), float(dy))
                crops = pipe.crop_faces(frame, d)
                results.append(PipelineResult(Detections.empty(), d, crops, pipe.embed(frame, d, crops), None, 0.42,
                                              "m", {}))
                frames.append(frame)
            fused_only = float(fuse_results(frames, results)[0].embeddings[0] @ portrait)
            with_stack = float(fuse_results(frames, results, embed_stacked=pipe.embed_regions)[0].embeddings[0] @ portrait)
            gains.append(with_stack - fused_only)
    assert min(gains) > 0, gains
    assert float(np.mean(gains)) >= 0.02, gains
