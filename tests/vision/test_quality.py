"""Enrollment quality gate on real faces: accepts good ones, rejects blurry/small/turned ones."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aas_core.vision.quality import QualityThresholds, assess, blur_score, pose_from_landmarks
from aas_core.vision.types import Detections

T = QualityThresholds()  # 40 px, blur 15, score 0.6, |yaw| 0.6, |roll| 30 deg


@pytest.fixture(scope="module")
def good(faces):
    """A frontal, sharp LFW face (Tony Blair photo 2)."""
    f = next(f for f in faces if f.label == "lfw_Tony_Blair" and f.path.stem == "2")
    return f.image, f.det


def test_good_face_accepted_with_figures(good) -> None:
    image, det = good
    r = assess(image, det, T)
    assert r.accepted and r.reasons == []
    assert set(r.figures) == {"face_px", "blur", "det_score", "yaw", "roll_deg"}
    assert r.figures["face_px"] > 60 and r.figures["blur"] > 50 and abs(r.figures["yaw"]) < 0.3


def test_blurred_copy_rejected_for_blur(good) -> None:
    image, det = good
    sigma = float(min(det.widths[0], det.heights[0])) / 25  # ~4 px on a 95 px face
    r = assess(cv2.GaussianBlur(image, (0, 0), sigma), det, T)
    assert not r.accepted
    assert len(r.reasons) == 1 and r.reasons[0].startswith("too blurry: ")
    assert r.figures["blur"] < T.min_blur
    assert f"< {T.min_blur:g}" in r.reasons[0]


def test_blur_score_does_not_depend_on_face_pixel_size(good) -> None:
    """Resizing to a fixed size first: the same face at half resolution scores similarly."""
    image, det = good
    half = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    full, small = blur_score(image, det.xyxy[0]), blur_score(half, det.xyxy[0] / 2)
    assert 0.3 < small / full < 3


def test_tiny_face_rejected_for_size(good, detect_faces) -> None:
    image, _ = good
    tiny = cv2.resize(image, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    det = detect_faces(tiny)
    assert len(det)
    face = det[int(np.argmax(det.confidence))]
    r = assess(tiny, face, T)
    assert not r.accepted
    size_reason = [x for x in r.reasons if x.startswith("face too small: ")]
    assert size_reason and size_reason[0].endswith("px < 40 px")


def test_low_score_and_turned_head_rejected(good) -> None:
    image, det = good
    low = Detections(det.xyxy, [0.3], det.landmarks)
    reasons = assess(image, low, T).reasons
    assert any(x.startswith("face not clearly visible: detector score 0.30 < 0.6") for x in reasons)
    lm = det.landmarks.copy()
    eye_dist = float(np.linalg.norm(lm[0, 1] - lm[0, 0]))
    lm[0, 2, 0] = lm[0, 1, 0] + 0.1 * eye_dist  # nose beyond the right eye: turned head
    r = assess(image, Detections(det.xyxy, det.confidence, lm), T)
    assert not r.accepted and any(x.startswith("head turned sideways: |yaw| 1.00 > 0.6") for x in r.reasons)


def test_pose_from_landmarks() -> None:
    from insightface.utils.face_align import arcface_dst

    yaw, roll = pose_from_landmarks(arcface_dst)  # the canonical frontal face
    assert abs(yaw) < 0.05 and abs(roll) < 1
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    yaw, roll = pose_from_landmarks(arcface_dst @ np.array([[c, s], [-s, c]]))  # rotated 20 deg
    assert abs(yaw) < 0.05 and roll == pytest.approx(20, abs=0.5)


def test_without_landmarks_pose_is_not_checked(good) -> None:
    image, det = good
    r = assess(image, Detections(det.xyxy, det.confidence), T)
    assert r.accepted and r.figures["yaw"] is None and r.figures["roll_deg"] is None


def test_needs_exactly_one_face(good) -> None:
    image, det = good
    with pytest.raises(ValueError, match="exactly one face"):
        assess(image, Detections.concat([det, det]), T)


def test_thresholds_from_settings() -> None:
    from aas_core.config import Settings

    t = QualityThresholds.from_settings(Settings(enroll_min_face_px=64, enroll_min_blur=20.0))
    assert t.min_face_px == 64 and t.min_blur == 20.0 and t.max_yaw == Settings().enroll_max_yaw
