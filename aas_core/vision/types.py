"""Typed stage outputs shared by every vision backend.

In the style of supervision's ``Detections``: one small dataclass of numpy arrays flows
between stages; each backend adapts its raw output into it. Boxes are ``xyxy`` in pixel
coordinates of the image that was passed to the stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

#: Where a face detection came from (shown by the Pipeline Inspector).
SOURCE_FRAME = "frame"
SOURCE_PERSON = "person"
SOURCE_TILE = "tile"


@dataclass
class Detections:
    """N detections: boxes, scores, optional 5-point landmarks, and where each came from."""

    xyxy: np.ndarray  # (N, 4) float32
    confidence: np.ndarray  # (N,) float32
    landmarks: np.ndarray | None = None  # (N, 5, 2) float32: left eye, right eye, nose, mouth L, mouth R
    source: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))  # (N,) str

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        if len(self.confidence) != n:
            raise ValueError(f"confidence has {len(self.confidence)} entries for {n} boxes")
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 5, 2)
            if len(self.landmarks) != n:
                raise ValueError(f"landmarks has {len(self.landmarks)} entries for {n} boxes")
        src = np.asarray(self.source, dtype=object).reshape(-1)
        if len(src) == 0 and n:
            src = np.full(n, SOURCE_FRAME, dtype=object)
        if len(src) != n:
            raise ValueError(f"source has {len(src)} entries for {n} boxes")
        self.source = src

    @classmethod
    def empty(cls, with_landmarks: bool = False) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            landmarks=np.zeros((0, 5, 2), np.float32) if with_landmarks else None,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            landmarks=None if self.landmarks is None else self.landmarks[index],
            source=self.source[index],
        )

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def area(self) -> np.ndarray:
        return self.widths * self.heights

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Detections:
        """Map detections made on a crop (optionally resized by ``scale``) back to the frame."""
        xyxy = self.xyxy / scale + np.array([dx, dy, dx, dy], np.float32)
        lms = None if self.landmarks is None else self.landmarks / scale + np.array([dx, dy], np.float32)
        return Detections(xyxy=xyxy, confidence=self.confidence.copy(), landmarks=lms, source=self.source.copy())

    def with_source(self, source: str) -> Detections:
        return Detections(self.xyxy, self.confidence, self.landmarks, np.full(len(self), source, dtype=object))

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty(with_landmarks=True)
        has_lm = all(p.landmarks is not None for p in parts)
        return Detections(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            landmarks=np.concatenate([p.landmarks for p in parts]) if has_lm else None,  # type: ignore[misc]
            source=np.concatenate([p.source for p in parts]),
        )


@runtime_checkable
class PersonDetector(Protocol):
    """Finds persons (COCO class 0) in a BGR frame."""

    name: str

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.35) -> Detections: ...


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces (boxes + 5-point landmarks when the backend has them) in a BGR image."""

    name: str

    def detect(self, image_bgr: np.ndarray, conf_threshold: float = 0.5) -> Detections: ...


@runtime_checkable
class Enhancer(Protocol):
    """Improves a small face crop (BGR in, BGR out; output may be larger by ``scale``)."""

    name: str
    scale: int

    def enhance(self, crop_bgr: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns faces of one image into L2-normalised embeddings, shape (N, dim), float32.

    ``name`` is the model id stored next to every embedding; matching never mixes names.
    Each backend aligns faces its own way from the boxes and landmarks it is given.
    """

    name: str
    dim: int

    def embed(self, image_bgr: np.ndarray, faces: Detections) -> np.ndarray: ...
