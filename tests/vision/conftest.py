"""Fixtures for the vision tests (detectors, flows, NMS, embedders, enhancers, matching, quality,
weights registry): real weights and real images, loaded once per session.

Locations are the root conftest's ``models_dir`` / ``data_dir`` fixtures ($AAS_TEST_MODELS_DIR,
$AAS_TEST_DATA). A test whose asset is missing fails and names the path: a missing asset is a
broken setup, not a reason to skip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from aas_core.vision.types import Detections


def need_file(path: Path) -> Path:
    """``path`` if it exists; a missing asset is a broken setup, so the test fails and says which."""
    if not path.is_file():
        pytest.fail(f"missing test asset: {path} (set AAS_TEST_MODELS_DIR / AAS_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def model_file(models_dir: Path) -> Callable[[str], Path]:
    """``model_file("scrfd_2.5g.onnx")`` -> path in the models folder (fails if absent)."""
    return lambda name: need_file(models_dir / name)


@pytest.fixture(scope="session")
def load_image(data_dir: Path) -> Callable[[str], np.ndarray]:
    """``load_image("group/kids_group8.jpg")`` -> BGR uint8 array (fails if absent)."""
    cache: dict[str, np.ndarray] = {}

    def _load(rel: str) -> np.ndarray:
        if rel not in cache:
            img = cv2.imread(str(need_file(data_dir / rel)), cv2.IMREAD_COLOR)
            assert img is not None, f"cv2 could not decode {data_dir / rel}"
            cache[rel] = img
        return cache[rel].copy()

    return _load


@pytest.fixture(scope="session")
def face_files(data_dir: Path) -> Callable[[str], list[Path]]:
    """``face_files("glint")`` -> sorted faces_dev images of that source (fails if none)."""

    def _files(prefix: str) -> list[Path]:
        files = sorted((data_dir / "faces_dev").glob(f"{prefix}_*/*.jpg"))
        if not files:
            pytest.fail(f"no faces_dev/{prefix}_* images under {data_dir} (set AAS_TEST_DATA)")
        return files

    return _files


# --- detectors, loaded once (weights are the slow part) -----------------------------------


@pytest.fixture(scope="session")
def scrfd(model_file):
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector

    return ScrfdFaceDetector(model_file("scrfd_2.5g.onnx"))


@pytest.fixture(scope="session")
def scrfd_500m(model_file):
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector

    return ScrfdFaceDetector(model_file("scrfd_500m.onnx"))


@pytest.fixture(scope="session")
def yunet(model_file):
    from aas_core.vision.faces.yunet import YunetFaceDetector

    return YunetFaceDetector(model_file("face_detection_yunet_2026may.onnx"))


@pytest.fixture(scope="session")
def dlib_hog():
    from aas_core.vision.faces.dlib_hog import DlibHogFaceDetector

    return DlibHogFaceDetector(upsample=1)


@pytest.fixture(scope="session")
def dlib_cnn():
    from aas_core.vision.faces.dlib_cnn import DlibCnnFaceDetector, default_mmod_path

    need_file(default_mmod_path())
    return DlibCnnFaceDetector(upsample=0)


@pytest.fixture(scope="session")
def face_detector(request):
    """Indirect-parametrisation helper: ``@pytest.mark.parametrize("face_detector", [...], indirect=True)``."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def yolo_onnx(model_file):
    from aas_core.vision.persons.yolo_onnx import YoloOnnxPersonDetector

    return YoloOnnxPersonDetector(model_file("yolov8n_int8.onnx"))


@pytest.fixture(scope="session")
def yolox_onnx(model_file):
    from aas_core.vision.persons.yolox_onnx import YoloxOnnxPersonDetector

    return YoloxOnnxPersonDetector(model_file("yolox_nano.onnx"))


@pytest.fixture(scope="session")
def ultralytics_yolo(model_file):
    from aas_core.vision.persons.ultralytics_yolo import UltralyticsPersonDetector

    return UltralyticsPersonDetector(model_file("yolov8n_int8.onnx"))


@pytest.fixture(scope="session")
def person_detector(request):
    return request.getfixturevalue(request.param)


# --- embed / enhance / matching / quality: faces of real photos ----------------------------

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
def detect_faces(scrfd) -> Callable[[np.ndarray], Detections]:
    """All faces of a BGR image as ``Detections`` (largest first), landmarks included.

    Small images (tight 112 px crops) are padded by half their size first: SCRFD needs
    some context around a face to fire.
    """

    def run(image: np.ndarray) -> Detections:
        pad = max(image.shape[:2]) // 2 if max(image.shape[:2]) <= 128 else 0
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT) if pad else image
        d = scrfd.detect(padded, 0.5)
        if not len(d):
            return d
        d = d[np.argsort(-d.area, kind="stable")]
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
def lowres_image(load_image) -> np.ndarray:
    return load_image("lowres/hepburn_225x225.jpg")
