"""Embedders on real photos: shapes, unit norm, and that they actually tell people apart."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aas_core.vision.embed import far_threshold, l2_normalize
from aas_core.vision.types import Detections, Embedder

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage via insightface norm_crop

# (fixture, dim, name, min gap between mean genuine and mean impostor cosine)
EMBEDDERS = [("arcface", 128, "arcface:mobilefacenet", 0.35), ("dlib_embedder", 128, "dlib:resnet_v1", 0.07)]


@pytest.fixture(scope="module", params=EMBEDDERS, ids=[e[2] for e in EMBEDDERS])
def case(request, faces):
    fixture, dim, name, gap = request.param
    emb = request.getfixturevalue(fixture)
    vecs = np.concatenate([emb.embed(f.image, f.det) for f in faces])
    labels = np.array([f.label for f in faces])
    return emb, dim, name, gap, vecs, labels


def _pairs(vecs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sims = vecs @ vecs.T
    iu = np.triu_indices(len(vecs), 1)
    same = (labels[:, None] == labels[None, :])[iu]
    return sims, sims[iu][same], sims[iu][~same]


def test_protocol_shape_dtype_norm(case) -> None:
    emb, dim, name, _, vecs, _ = case
    assert isinstance(emb, Embedder)
    assert emb.name == name and emb.dim == dim
    assert vecs.dtype == np.float32 and vecs.shape[1] == dim
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert 0 < emb.default_threshold < 1


def test_genuine_pairs_score_higher_than_impostors(case) -> None:
    emb, _, name, gap, vecs, labels = case
    sims, genuine, impostor = _pairs(vecs, labels)
    assert genuine.mean() - impostor.mean() > gap, (name, genuine.mean(), impostor.mean())
    np.fill_diagonal(sims, -np.inf)
    rank1 = (labels[sims.argmax(axis=1)] == labels).mean()
    assert rank1 >= 0.9, f"{name}: leave-one-out rank-1 {rank1:.3f}"
    # the calibrated default threshold behaves on this subset too
    far = (impostor >= emb.default_threshold).mean()
    tar = (genuine >= emb.default_threshold).mean()
    assert far <= 0.01 and tar >= 0.6, f"{name}: FAR {far:.4f} TAR {tar:.3f} at {emb.default_threshold}"


@pytest.mark.parametrize("fixture", ["arcface", "dlib_embedder"])
def test_all_faces_of_an_image_in_one_call_match_single_calls(fixture, request, faces, detect_faces) -> None:
    emb = request.getfixturevalue(fixture)
    a, b = _two_lfw(faces)
    pair = np.hstack([a, b])
    dets = detect_faces(pair)[np.arange(2)]  # the two main faces (largest first)
    together = emb.embed(pair, dets)
    apart = np.concatenate([emb.embed(pair, dets[i]) for i in range(2)])
    np.testing.assert_allclose(together, apart, atol=1e-4)


def _two_lfw(faces) -> tuple[np.ndarray, np.ndarray]:
    lfw = [f for f in faces if f.label.startswith("lfw_")]
    other = next(f for f in lfw if f.label != lfw[0].label)
    return lfw[0].image, other.image


@pytest.mark.parametrize("fixture", ["arcface", "dlib_embedder"])
def test_no_faces_gives_empty_matrix(fixture, request, lowres_image) -> None:
    emb = request.getfixturevalue(fixture)
    out = emb.embed(lowres_image, Detections.empty(with_landmarks=True))
    assert out.shape == (0, emb.dim) and out.dtype == np.float32


@pytest.mark.parametrize("fixture", ["arcface", "dlib_embedder"])
def test_rejects_non_bgr_images(fixture, request, faces) -> None:
    emb = request.getfixturevalue(fixture)
    gray = cv2.cvtColor(faces[0].image, cv2.COLOR_BGR2GRAY)
    with pytest.raises(ValueError, match="3-channel"):
        emb.embed(gray, faces[0].det)


def test_arcface_without_landmarks_falls_back_to_box_crop(arcface, faces) -> None:
    """The square-crop fallback is less accurate but must still identify people."""
    lfw = [f for f in faces if f.label.startswith("lfw_")]
    with_lm = np.concatenate([arcface.embed(f.image, f.det) for f in lfw])
    no_lm = np.concatenate(
        [arcface.embed(f.image, Detections(f.det.xyxy, f.det.confidence, landmarks=None)) for f in lfw]
    )
    assert np.isfinite(no_lm).all()
    np.testing.assert_allclose(np.linalg.norm(no_lm, axis=1), 1.0, atol=1e-5)
    labels = np.array([f.label for f in lfw])
    cross = no_lm @ with_lm.T  # landmark-free query vs aligned reference
    np.fill_diagonal(cross, -np.inf)  # not the same photo
    assert (labels[cross.argmax(axis=1)] == labels).mean() >= 0.8


def test_arcface_embed_aligned_on_glint_crops(arcface, faces) -> None:
    """Glint360k crops are already ArcFace-aligned 112x112: embed them directly."""
    glint = [f for f in faces if f.label.startswith("glint_")]
    vecs = arcface.embed_aligned(np.stack([f.image for f in glint]))
    labels = np.array([f.label for f in glint])
    _, genuine, impostor = _pairs(vecs, labels)
    assert vecs.shape == (len(glint), 128)
    assert genuine.mean() - impostor.mean() > 0.35
    with pytest.raises(ValueError, match="112"):
        arcface.embed_aligned(np.zeros((2, 100, 100, 3), np.uint8))


def test_arcface_name_and_default_threshold(arcface) -> None:
    assert arcface.name == "arcface:mobilefacenet"
    assert arcface.calibrated and arcface.default_threshold == pytest.approx(0.42)
    assert arcface.input_name == "input" and arcface.input_size == 112


def test_helpers() -> None:
    x = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]])
    imp = np.linspace(-1, 1, 10_001)
    thr = far_threshold(imp, 1e-3)
    assert (imp >= thr).mean() <= 1e-3 and (imp >= thr - 1e-3).mean() > 1e-3 - 1e-4
    with pytest.raises(ValueError):
        far_threshold(imp, 0)
