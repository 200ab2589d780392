"""Classroom-resolution templates (``vision.templates``): rendering, embedding, matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aas_core.vision import templates
from aas_core.vision.matching import Gallery
from aas_core.vision.templates import ClassroomGallery, View, classroom_embeddings, render_view, roster_gallery
from aas_core.vision.types import Detections


@pytest.fixture(scope="module")
def fast_pipe(models_dir: Path):  # type: ignore[no-untyped-def]
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import resolve_profile

    return Pipeline(resolve_profile("fast", models_dir)[0], models_dir)


@pytest.fixture(scope="module")
def portrait(fast_pipe, face_files):  # type: ignore[no-untyped-def]
    import cv2

    img = cv2.imread(str(face_files("glint")[0]))
    faces = fast_pipe.face_detector.detect(img, conf_threshold=0.5)
    assert len(faces) >= 1
    return img, faces[int(np.argmax(faces.area))]


def test_a_view_shrinks_the_face_to_its_width_and_keeps_the_landmarks_on_it(portrait) -> None:  # type: ignore[no-untyped-def]
    img, face = portrait
    small, det = render_view(img, face, View(32.0, gain=0.5, gamma=1.3, noise_sigma=6.0, jpeg_quality=60))
    w = det.xyxy[0, 2] - det.xyxy[0, 0]
    assert abs(w - 32.0) < 1.0
    lm = det.landmarks[0]
    x1, y1, x2, y2 = det.xyxy[0]
    assert ((lm[:, 0] > x1 - 2) & (lm[:, 0] < x2 + 2) & (lm[:, 1] > y1 - 2) & (lm[:, 1] < y2 + 2)).all()
    assert small.shape[1] < img.shape[1] and small.dtype == np.uint8
    # dimmed: the rendered frame is darker than the photo scaled down without the dim view
    plain, _ = render_view(img, face, View(32.0))
    assert small.mean() < 0.8 * plain.mean()


def test_views_are_reproducible_and_need_exactly_one_face(portrait) -> None:  # type: ignore[no-untyped-def]
    img, face = portrait
    v = View(24.0, noise_sigma=8.0)
    a, _ = render_view(img, face, v)
    b, _ = render_view(img, face, v)
    assert np.array_equal(a, b)
    two = Detections(np.vstack([face.xyxy, face.xyxy]), np.ones(2))
    with pytest.raises(ValueError, match="exactly one face"):
        render_view(img, two, v)


def test_a_covered_view_hides_the_lower_face_only(portrait) -> None:  # type: ignore[no-untyped-def]
    """``cover_below``: a head in the row in front hides the chin and mouth, not the eyes."""
    img, face = portrait
    plain, det = render_view(img, face, View(64.0, jpeg_quality=95))
    covered, det2 = render_view(img, face, View(64.0, jpeg_quality=95, cover_below=0.3))
    assert np.array_equal(det.xyxy, det2.xyxy)
    x1, y1, x2, y2 = (int(v) for v in det.xyxy[0])
    h = y2 - y1
    lower = (slice(int(y2 - 0.25 * h), y2), slice(x1, x2))
    upper = (slice(y1, int(y1 + 0.5 * h)), slice(x1, x2))
    assert np.abs(covered[lower].astype(int) - 40).mean() < 6  # the flat dark fill
    assert np.abs(plain[lower].astype(int) - 40).mean() > 20  # a face was there
    assert np.abs(covered[upper].astype(int) - plain[upper].astype(int)).mean() < 3
    with pytest.raises(ValueError, match="cover_below"):
        View(32.0, cover_below=1.0)


def test_batched_views_equal_the_pipeline_path_of_a_snapshot_face(fast_pipe, portrait) -> None:  # type: ignore[no-untyped-def]
    """The templates must be what a face of that size in a snapshot embeds to: the batch
    shortcut gives the same vectors as ``Pipeline.crop_faces`` + ``Pipeline.embed``."""
    img, face = portrait
    views = templates.DEFAULT_VIEWS[:3]
    batched = classroom_embeddings(fast_pipe, img, face, views)
    one_by_one = []
    for v in views:
        small, det = render_view(img, face, v)
        one_by_one.append(fast_pipe.embed(small, det, fast_pipe.crop_faces(small, det))[0])
    assert batched.shape == (3, fast_pipe.embedder.dim)
    np.testing.assert_allclose(batched, np.stack(one_by_one), atol=1e-4)
    # a small view is not the portrait: otherwise the templates would add nothing
    full = fast_pipe.embedder.embed(img, face)[0]
    assert float(batched[0] @ full) < 0.98


def _unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_student_scores_the_better_of_portraits_and_scaled_classroom_templates() -> None:
    rng = np.random.default_rng(3)
    ids = ["a", "a", "b", "c"]
    portraits = _unit(rng, 4)
    cls_ids = ["a", "b", "b"]
    cls = _unit(rng, 3)
    g = ClassroomGallery(ids, portraits, "m", classroom_ids=cls_ids, classroom_embeddings=cls, scale=0.7)
    q = _unit(rng, 5)
    plain = Gallery(ids, portraits, "m").scores(q, model_name="m")
    by_cls = Gallery(cls_ids, cls, "m").scores(q, model_name="m") * 0.7
    want = plain.copy()
    want[:, 0] = np.maximum(plain[:, 0], by_cls[:, 0])
    want[:, 1] = np.maximum(plain[:, 1], by_cls[:, 1])
    np.testing.assert_allclose(g.scores(q, model_name="m"), want, atol=1e-6)
    # the one threshold applies to the combined score, and a classroom template can win a match
    q2 = cls[2:3]  # exactly b's template: cos 1 -> 0.7
    m = g.match(q2, threshold=0.65, model_name="m")
    assert m.assigned == ["b"] and abs(float(m.assigned_similarity[0]) - 0.7) < 1e-5
    assert g.match(q2, threshold=0.75, model_name="m").assigned in (["b"], [None])


def test_bad_classroom_galleries_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="without portraits"):
        ClassroomGallery(["a"], _unit(rng, 1), "m", classroom_ids=["z"], classroom_embeddings=_unit(rng, 1), scale=0.7)
    with pytest.raises(ValueError, match="scale"):
        ClassroomGallery(["a"], _unit(rng, 1), "m", classroom_ids=["a"], classroom_embeddings=_unit(rng, 1), scale=1.5)


def test_roster_gallery_uses_templates_only_with_a_calibrated_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    ids, embs = ["a", "b"], _unit(rng, 2)
    cls = (["a", "gone"], _unit(rng, 2))  # a student no longer on the roster is left out
    monkeypatch.setattr(templates, "CLASSROOM_SCALES", {})
    assert type(roster_gallery(ids, embs, "m", cls)) is Gallery
    monkeypatch.setattr(templates, "CLASSROOM_SCALES", {"m": 0.7})
    g = roster_gallery(ids, embs, "m", cls)
    assert isinstance(g, ClassroomGallery) and g.scale == 0.7 and g._classroom.student_ids == ["a"]
    assert type(roster_gallery(ids, embs, "m", None)) is Gallery
    assert roster_gallery([], np.zeros((0, 0), np.float32), "m", cls) is None
