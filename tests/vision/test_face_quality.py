"""The per-face quality figure (vision.face_quality): in [0, 1], lower for each problem, with its components."""

from __future__ import annotations

import cv2
import numpy as np

from aas_core.vision.face_quality import POOR_QUALITY, measure

LM = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.58], [0.35, 0.78], [0.65, 0.78]], np.float32)


def _face(px: int, gain: float = 1.0, blur: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((300, 300, 3), 90, np.uint8)
    tex = np.random.default_rng(0).integers(60, 230, (px, px, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(tex, (0, 0), 0.6)
    if blur:
        tex = cv2.GaussianBlur(tex, (0, 0), blur)
    img[100:100 + px, 100:100 + px] = np.clip(tex * gain, 0, 255).astype(np.uint8)
    return img, np.array([100, 100, 100 + px, 100 + px], np.float32)


def test_a_large_sharp_well_lit_frontal_face_scores_high() -> None:
    img, box = _face(80)
    q = measure(img, box, 0.9, LM * 80 + 100)
    assert q.score > 0.9 and set(q.components) == {"size", "sharpness", "exposure", "detector", "pose"}
    assert q.problems() == [] and q.describe() == "size 80 px"


def test_each_problem_lowers_the_figure_and_is_named() -> None:
    good = measure(*_face(80), 0.9, LM * 80 + 100).score
    cases = {
        "small": measure(*_face(18), 0.9, LM * 18 + 100),
        "dark": measure(*_face(80, gain=0.12), 0.9, LM * 80 + 100),
        "blurry": measure(*_face(80, blur=4.0), 0.9, LM * 80 + 100),
        "hardly visible": measure(*_face(80), 0.3, LM * 80 + 100),
        "turned away": measure(*_face(80), 0.9, (LM + [[0.25, 0], [0.25, 0], [0.45, 0], [0.25, 0], [0.25, 0]]) * 80 + 100),
    }
    for word, q in cases.items():
        assert 0.0 <= q.score < good, word
        assert any(p.startswith(word) for p in q.problems()), (word, q.problems())
    assert cases["small"].score < POOR_QUALITY and cases["small"].describe().startswith("size 18 px")


def test_a_face_outside_the_image_is_the_poorest() -> None:
    q = measure(np.zeros((50, 50, 3), np.uint8), np.array([60, 60, 80, 80], np.float32), 0.5)
    assert q.score < POOR_QUALITY and q.figures["yaw"] is None


def test_camera_advice_names_the_small_faces_and_the_remedy() -> None:
    from aas_core.vision.face_quality import camera_advice

    back_rows = np.array([24, 26, 28, 30, 60, 70, 80, 90, 95, 100], np.float32)
    advice = camera_advice(1920, back_rows)
    assert advice is not None and "4 of 10 faces are under 32 px" in advice and "4K camera" in advice
    at_4k = camera_advice(3840, back_rows)
    assert at_4k is not None and "4K camera" not in at_4k and "closer" in at_4k
    # a few small faces among many, or none at all: no advice
    assert camera_advice(1920, np.array([25, 28] + [80] * 20, np.float32)) is None
    assert camera_advice(1920, np.array([], np.float32)) is None
