"""Fixtures for the embed / enhance / matching / quality / registry tests.

Faces are found with InsightFace's SCRFD-2.5g directly (not through our detector
backends, which are tested elsewhere), so these tests depend only on the models and the
photos in ``AAS_MODELS_DIR`` / ``AAS_TEST_DATA`` (``models_dir`` / ``data_dir`` fixtures of
the top-level conftest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from aas_core.vision.types import Detections

#: A mix of sources: aligned 112 px crops (glint), LFW photos, grayscale ORL and Yale.
SUBSET = [
    "glint_Barack_Obama", "glint_Tom_Hanks", "glint_Jennifer_Lopez", "glint_Keanu_Reeves",
    "lfw_Tony_Blair", "lfw_Colin_Powell", "lfw_George_W_Bush",
    "orl_s01", "orl_s02", "yale_subject01",
]
PER_IDENTITY = 4


@dataclass(frozen=True)
class Face:
    label: str
    path: Path
    image: np.ndarray  # BGR uint8
    det: Detections  # exactly one face, with landmarks


@pytest.fixture(scope="session")
def scrfd(models_dir: Path):  # -> insightface SCRFD
    from insightface.model_zoo import get_model

    det = get_model(str(models_dir / "scrfd_2.5g.onnx"), providers=["CPUExecutionProvider"])
    det.prepare(ctx_id=-1, input_size=(640, 640), det_thresh=0.5)
    return det


@pytest.fixture(scope="session")
def detect_faces(scrfd) -> Callable[[np.ndarray], Detections]:
    """All faces of a BGR image as ``Detections`` (largest first), landmarks included.

    Small images (tight 112 px crops) are padded by half their size first: SCRFD needs
    some context around a face to fire.
    """

    def run(image: np.ndarray) -> Detections:
        pad = max(image.shape[:2]) // 2 if max(image.shape[:2]) <= 128 else 0
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT) if pad else image
        boxes, kps = scrfd.detect(padded, input_size=(640, 640))
        if not len(boxes):
            return Detections.empty(with_landmarks=True)
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        d = Detections(boxes[order, :4], boxes[order, 4], kps[order])
        return d.shifted(-pad, -pad) if pad else d

    return run


def central_face(image: np.ndarray, dets: Detections) -> Detections:
    """The detection nearest the image centre: LFW and glint photos are centred on their
    subject, while the largest box may be a bystander cut off by the border."""
    centres = (dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2
    h, w = image.shape[:2]
    return dets[int(np.argmin(np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2)))]


@pytest.fixture(scope="session")
def faces(data_dir: Path, detect_faces: Callable[[np.ndarray], Detections]) -> list[Face]:
    """PER_IDENTITY photos of each SUBSET identity, with the face of their subject."""
    out = []
    for ident in SUBSET:
        files = sorted((data_dir / "faces_dev" / ident).glob("*.jpg"), key=lambda p: int(p.stem))[:PER_IDENTITY]
        assert len(files) == PER_IDENTITY, f"{ident}: expected {PER_IDENTITY} photos"
        for f in files:
            img = cv2.imread(str(f))
            d = detect_faces(img)
            assert len(d), f"no face found in {f}"
            out.append(Face(ident, f, img, central_face(img, d)))
    return out


@pytest.fixture(scope="session")
def arcface(models_dir: Path):
    from aas_core.vision.embed import ArcFaceOnnxEmbedder

    return ArcFaceOnnxEmbedder("mobilefacenet", models_dir, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def dlib_embedder():
    from aas_core.vision.embed import DlibResnetEmbedder

    return DlibResnetEmbedder()


@pytest.fixture(scope="session")
def lowres_image(data_dir: Path) -> np.ndarray:
    img = cv2.imread(str(data_dir / "lowres" / "hepburn_225x225.jpg"))
    assert img is not None
    return img
