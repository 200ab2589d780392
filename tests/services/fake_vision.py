"""A deterministic stand-in for the vision pipeline, for tests about the database, not about vision.

Images are strips of 8 "seats" (60 px wide); a textured 48 px patch in seat k is the face of
the student in seat k, a black seat is empty. The fake detector finds textured seats (with
frontal 5-point landmarks, so the real enrollment quality gate accepts them), the fake
embedder returns seat k's fixed unit vector, and matching is the real ``Gallery`` code.
It survives JPEG storage, so the whole ``SessionService`` path runs unchanged.
"""

from __future__ import annotations

import time

import numpy as np

from aas_core.vision.matching import Gallery
from aas_core.vision.pipeline import FaceCrops, PipelineResult
from aas_core.vision.profiles import PipelineConfig
from aas_core.vision.types import Detections

SEAT, SEATS, PATCH, TOP = 60, 8, 48, 26
DIM = 32


def seat_vector(seat: int) -> np.ndarray:
    v = np.random.default_rng(1000 + seat).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def scene(seats: list[int] | set[int]) -> np.ndarray:
    """A strip with a face in every given seat."""
    img = np.zeros((100, SEAT * SEATS, 3), np.uint8)
    for k in seats:
        patch = np.random.default_rng(k).integers(40, 255, (PATCH, PATCH, 3), dtype=np.uint8)
        img[TOP:TOP + PATCH, k * SEAT + 6:k * SEAT + 6 + PATCH] = patch
    return img


class FakeDetector:
    name = "fake:seats"

    def detect(self, image: np.ndarray, conf_threshold: float = 0.5) -> Detections:
        boxes, lms = [], []
        for k in range(min(SEATS, image.shape[1] // SEAT)):
            x1 = k * SEAT + 6
            if image[TOP:TOP + PATCH, x1:x1 + PATCH].std() > 20:
                boxes.append([x1, TOP, x1 + PATCH, TOP + PATCH])
                p = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.58], [0.35, 0.78], [0.65, 0.78]], np.float32)
                lms.append(p * PATCH + np.array([x1, TOP], np.float32))
        if not boxes:
            return Detections.empty(with_landmarks=True)
        return Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.99, np.float32), np.array(lms))


class FakeEmbedder:
    name = "fake:seat-vectors"
    dim = DIM
    default_threshold = 0.5

    def embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        out = np.zeros((len(faces), DIM), np.float32)
        for i, box in enumerate(faces.xyxy):
            out[i] = seat_vector(int(round((box[0] - 6) / SEAT)))
        return out


class FakePipeline:
    """Quacks like ``aas_core.vision.pipeline.Pipeline`` for SessionService and enroll_images."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s  # makes concurrent sessions really overlap
        self.config = PipelineConfig(profile="fake", face_conf=0.5)
        self.face_detector = FakeDetector()
        self.embedder = FakeEmbedder()
        self.threshold = 0.5
        self.runs = 0

    def run(self, image: np.ndarray, gallery: Gallery | None = None, threshold: float | None = None) -> PipelineResult:
        self.runs += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        faces = self.face_detector.detect(image)
        embs = self.embedder.embed(image, faces)
        crops = [image[int(b[1]):int(b[3]), int(b[0]):int(b[2])].copy() for b in faces.xyxy]
        thr = self.threshold if threshold is None else threshold
        match = gallery.match(embs, threshold=thr, model_name=self.embedder.name) if gallery is not None and len(gallery) else None
        return PipelineResult(Detections.empty(), faces, FaceCrops(crops, [None] * len(crops), faces.xyxy[:, :2].copy()),
                              embs, match, thr, self.embedder.name, {"total": 1.0})
