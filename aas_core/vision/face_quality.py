"""How identifiable one detected face is: a figure in [0, 1] with its components.

The enrollment gate (``vision.quality``) answers "is this a good reference photo?" with hard
limits. A classroom snapshot needs a softer question answered for *every* face: is this face
good enough that "no match" means "not a student", or is it too poor to tell? A tiny, dark,
blurred or turned-away face of an enrolled student often scores under the open-set threshold;
reading it as "that student is not here" marks present students absent. The session uses this
figure to abstain ("could not tell") instead (``domain.abstention``).

Components, each in [0, 1] (1 = no problem), from the frame and the detector output only:

* ``size``: shorter side of the box in px; the embedders see 112 px, below ~20 px a face is
  a few blocks of JPEG.
* ``sharpness``: variance of the Laplacian of the grayscale face resized to
  ``quality.BLUR_SIZE`` (so it does not grow with pixel size), on a log scale.
* ``exposure``: mean brightness (too dark / washed out) times contrast (a flat grey face).
* ``detector``: the detector's confidence (occlusions, masks, extreme poses score low).
* ``pose``: from the 5 landmarks (``quality.pose_from_landmarks``): |yaw| and |roll|; roll is
  undone by alignment, so it costs only when extreme. 1 when there are no landmarks.

``score`` is the weighted geometric mean of the components (``WEIGHTS``): one very bad
component pulls it down hard (a 15 px face is hopeless however sharp), mild problems add up. The ramps'
ends and ``POOR_QUALITY`` were set on hard synthetic lecture halls built from faces_dev
(``benchmarks/abstention_calibration.py``; docs/EVALUATION.md, "Abstention").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from aas_core.vision.quality import blur_score, face_crop, pose_from_landmarks
from aas_core.vision.types import Detections

__all__ = ["POOR_QUALITY", "SMALL_FACE_PX", "FaceQuality", "camera_advice", "measure", "measure_all"]

#: Below this ``score`` a face is too poor to identify: an unknown face this poor is "could not
#: tell", not a stranger. Calibrated in docs/EVALUATION.md ("Abstention").
POOR_QUALITY = 0.4


#: Weights of the components in ``score`` (sum 1). Size and sharpness predict best whether a
#: genuine face reaches the threshold (AUC 0.82 each on the calibration scenes, exposure 0.59,
#: detector 0.68, pose 0.55; docs/EVALUATION.md), so they weigh most.
WEIGHTS = {"size": 0.3, "sharpness": 0.3, "detector": 0.2, "exposure": 0.1, "pose": 0.1}


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at ``lo`` (or below), 1 at ``hi`` (or above), linear between."""
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


@dataclass(frozen=True)
class FaceQuality:
    """The figure of one face: ``score`` in [0, 1], its components and the raw measurements."""

    score: float
    components: dict[str, float]  # size, sharpness, exposure, detector, pose; each in [0, 1]
    figures: dict[str, float | None]  # face_px, blur, brightness, contrast, det_score, yaw, roll_deg

    def problems(self, limit: float = 0.5) -> list[str]:
        """Words for the components under ``limit`` ("dark", "blurry" ...), worst first: the
        review says why a face could not be identified."""
        f = self.figures
        words = {
            "size": f"small ({f['face_px']:.0f} px)",
            "sharpness": "blurry",
            "exposure": ("dark" if (f["brightness"] or 0) < 60 else "washed out" if (f["brightness"] or 0) > 200
                         else "low contrast"),
            "detector": f"hardly visible (detector {f['det_score']:.2f})",
            "pose": "turned away",
        }
        bad = sorted((v, k) for k, v in self.components.items() if v < limit)
        return [words[k] for _, k in bad]

    def describe(self) -> str:
        """"size 24 px, dark, blurry": the size, then what is wrong (for the review's reasons)."""
        px = self.figures.get("face_px")
        size = [f"size {px:.0f} px"] if isinstance(px, (int, float)) else []
        return ", ".join([*size, *(w for w in self.problems() if not w.startswith("small"))])

    def as_json(self) -> dict[str, object]:
        """What a ``FaceObservation`` stores (``quality_figures``): components and measurements."""
        return {"components": {k: round(v, 3) for k, v in self.components.items()}, **self.figures}

    @classmethod
    def from_json(cls, score: float, data: dict[str, object]) -> FaceQuality:
        comps = dict(data.get("components") or {})  # type: ignore[call-overload]
        figures = {k: v for k, v in data.items() if k != "components"}
        return cls(float(score), {k: float(v) for k, v in comps.items()}, figures)  # type: ignore[arg-type]


def measure(image: np.ndarray, box: np.ndarray, det_score: float, landmarks: np.ndarray | None = None) -> FaceQuality:
    """The quality of the face in ``box`` (xyxy) of ``image`` (BGR or grayscale)."""
    box = np.asarray(box, np.float64)
    face_px = float(max(0.0, min(box[2] - box[0], box[3] - box[1])))
    crop = face_crop(image, box)
    if crop.size == 0:
        brightness = contrast = blur = 0.0
    else:
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        # The inner face (no hair, no background at the box edges) decides the exposure.
        h, w = gray.shape[:2]
        inner = gray[h // 5: h - h // 10, w // 6: w - w // 6]
        inner = inner if inner.size else gray
        brightness, contrast = float(inner.mean()), float(inner.std())
        blur = blur_score(image, box)
    yaw = roll = None
    if landmarks is not None and np.isfinite(np.asarray(landmarks, np.float64)).all():
        yaw, roll = pose_from_landmarks(landmarks)
    components = {
        "size": _ramp(face_px, 14.0, 56.0),
        "sharpness": _ramp(math.log10(1.0 + blur), math.log10(4.0), math.log10(60.0)),
        "exposure": min(_ramp(brightness, 20.0, 70.0), _ramp(255.0 - brightness, 10.0, 45.0))
        * _ramp(contrast, 6.0, 24.0),
        "detector": _ramp(det_score, 0.35, 0.75),
        "pose": 1.0 if yaw is None else min(1.0 - _ramp(abs(yaw), 0.35, 0.9),
                                            1.0 - _ramp(abs(roll or 0.0), 35.0, 70.0)),
    }
    # Weighted geometric mean; a component of 0 would make every face with one hopeless
    # component equally 0, the floor keeps them ordered by the rest.
    score = math.exp(sum(WEIGHTS[k] * math.log(max(v, 0.02)) for k, v in components.items()))
    figures: dict[str, float | None] = {
        "face_px": round(face_px, 1), "blur": round(blur, 2), "brightness": round(brightness, 1),
        "contrast": round(contrast, 1), "det_score": round(float(det_score), 4),
        "yaw": None if yaw is None else round(yaw, 3), "roll_deg": None if roll is None else round(roll, 1),
    }
    return FaceQuality(round(score, 4), components, figures)


def measure_all(image: np.ndarray, faces: Detections) -> list[FaceQuality]:
    """:func:`measure` for every face of ``faces`` (in order)."""
    lms = faces.landmarks
    return [measure(image, faces.xyxy[i], float(faces.confidence[i]), None if lms is None else lms[i])
            for i in range(len(faces))]


#: Faces whose shorter side is under this many pixels are rarely named under dim, noisy
#: lecture-hall light (docs/EVALUATION.md, "Hard benchmark" and "Abstention"), while the same
#: room through a 3840x2160 camera (twice the pixels per face) names most of them.
SMALL_FACE_PX = 32.0
#: Frames at least this wide are already 4K-class: more pixels must come from a closer camera.
UHD_WIDTH = 3000


def camera_advice(frame_width: int, face_sizes: np.ndarray, min_share: float = 0.2,
                  min_faces: int = 3) -> str | None:
    """A sentence for the instructor when a camera gives too few pixels per face, else None.

    ``face_sizes``: the shorter side (px) of every face found in one frame. Advice is given when
    at least ``min_faces`` faces and ``min_share`` of all are under ``SMALL_FACE_PX``: a 4K camera
    for frames under 4K width, a closer camera or a narrower view for 4K frames.
    """
    sizes = np.asarray(face_sizes, dtype=np.float32).ravel()
    small = int((sizes < SMALL_FACE_PX).sum())
    if not len(sizes) or small < min_faces or small < min_share * len(sizes):
        return None
    what = (f"{small} of {len(sizes)} faces are under {SMALL_FACE_PX:.0f} px (smallest "
            f"{float(sizes.min()):.0f} px): such faces are often too small to recognise in a dim room.")
    if frame_width < UHD_WIDTH:
        return what + " A 4K camera (3840x2160) over the same view would give them twice the pixels."
    return what + " Even at this resolution: a camera closer to the back rows, or a narrower view, would help."
