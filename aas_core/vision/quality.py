"""Quality figures of one face, and the enrollment gate built on them.

Enrollment samples are the reference every later snapshot is compared with; one blurry,
tiny or turned-away sample lowers a student's scores for the whole term. So enrollment
measures each face and refuses bad samples with a reason a teacher can act on
("too blurry: 9.1 < 15"). Figures:

* ``face_px``: shorter side of the detector box: below ~40 px the embedding is mostly noise.
* ``blur``: variance of the Laplacian of the grayscale face crop, resized to
  ``BLUR_SIZE`` x ``BLUR_SIZE`` first so the number does not depend on the face's pixel size
  (an unresized large face has far more high-frequency energy than a small sharp one).
* ``det_score``: detector confidence; low scores are occlusions, masks, extreme poses.
* ``yaw``: horizontal offset of the nose tip from the eye midpoint, along the eye line,
  divided by half the eye distance: 0 = frontal, +-1 = nose in front of one eye (~45 deg
  or more). Positive = nose towards the image's right.
* ``roll_deg``: angle of the eye line to the horizontal, degrees.

Yaw and roll need the 5 landmarks; without them they are reported as None and not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from aas_core.vision.types import Detections

#: Side of the square the face is resized to before measuring blur.
BLUR_SIZE = 112


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the enrollment gate; defaults mirror the ``enroll_*`` settings."""

    min_face_px: float = 40
    min_blur: float = 15.0
    min_det_score: float = 0.6
    max_yaw: float = 0.6
    max_roll_deg: float = 30.0  # the eye line may tilt this much; aligners undo roll, so lax

    @classmethod
    def from_settings(cls, settings: object | None = None) -> QualityThresholds:
        """Thresholds from :class:`aas_core.config.Settings` (default: the current settings)."""
        if settings is None:
            from aas_core.config import get_settings

            settings = get_settings()
        return cls(
            min_face_px=settings.enroll_min_face_px,  # type: ignore[attr-defined]
            min_blur=settings.enroll_min_blur,  # type: ignore[attr-defined]
            min_det_score=settings.enroll_min_det_score,  # type: ignore[attr-defined]
            max_yaw=settings.enroll_max_yaw,  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class QualityReport:
    """Outcome of :func:`assess`: accepted or not, why not, and the measured figures."""

    accepted: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, float | None] = field(default_factory=dict)


def face_crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box clipped to the image (may be empty if the box lies outside)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.rint(np.asarray(box, np.float64)).astype(int)
    x1, x2 = max(0, x1), min(w, x2)
    y1, y2 = max(0, y1), min(h, y2)
    return image[y1:max(y1, y2), x1:max(x1, x2)]


def blur_score(image: np.ndarray, box: np.ndarray, size: int = BLUR_SIZE) -> float:
    """Variance of the Laplacian of the face, grayscale, at ``size`` x ``size`` pixels."""
    crop = face_crop(image, box)
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    interp = cv2.INTER_AREA if min(gray.shape[:2]) > size else cv2.INTER_LINEAR
    gray = cv2.resize(gray, (size, size), interpolation=interp)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def pose_from_landmarks(landmarks: np.ndarray) -> tuple[float, float]:
    """``(yaw, roll_deg)`` from 5 points (left eye, right eye, nose, mouth left, mouth right)."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    le, re, nose = lm[0], lm[1], lm[2]
    eye_vec = re - le
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist < 1e-6:
        return 1.0, 0.0  # degenerate: eyes on top of each other = full profile
    u = eye_vec / eye_dist
    offset = float(np.dot(nose - (le + re) / 2, u))
    yaw = float(np.clip(offset / (eye_dist / 2), -1.0, 1.0))
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    return yaw, roll


def assess(image: np.ndarray, face: Detections, thresholds: QualityThresholds | None = None) -> QualityReport:
    """Measure one face and apply the enrollment gate.

    Args:
        image: the BGR (or grayscale) image the face was detected in.
        face: exactly one detection (``Detections`` of length 1).
        thresholds: limits; default :meth:`QualityThresholds.from_settings`.
    """
    if len(face) != 1:
        raise ValueError(f"assess() takes exactly one face, got {len(face)}")
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"image must be a non-empty (H, W) or (H, W, 3) array, got {getattr(image, 'shape', image)}")
    t = thresholds or QualityThresholds.from_settings()
    box = face.xyxy[0]
    face_px = float(min(box[2] - box[0], box[3] - box[1]))
    blur = blur_score(image, box)
    score = float(face.confidence[0])
    yaw: float | None = None
    roll: float | None = None
    if face.landmarks is not None and np.isfinite(face.landmarks[0]).all():
        yaw, roll = pose_from_landmarks(face.landmarks[0])

    reasons: list[str] = []
    if face_px < t.min_face_px:
        reasons.append(f"face too small: {face_px:.0f} px < {t.min_face_px:g} px")
    if blur < t.min_blur:
        reasons.append(f"too blurry: {blur:.1f} < {t.min_blur:g}")
    if score < t.min_det_score:
        reasons.append(f"face not clearly visible: detector score {score:.2f} < {t.min_det_score:g}")
    if yaw is not None and abs(yaw) > t.max_yaw:
        reasons.append(f"head turned sideways: |yaw| {abs(yaw):.2f} > {t.max_yaw:g}")
    if roll is not None and abs(roll) > t.max_roll_deg:
        reasons.append(f"head tilted: |roll| {abs(roll):.0f} deg > {t.max_roll_deg:g} deg")
    figures: dict[str, float | None] = {
        "face_px": round(face_px, 1),
        "blur": round(blur, 2),
        "det_score": round(score, 4),
        "yaw": None if yaw is None else round(yaw, 3),
        "roll_deg": None if roll is None else round(roll, 1),
    }
    return QualityReport(accepted=not reasons, reasons=reasons, figures=figures)
