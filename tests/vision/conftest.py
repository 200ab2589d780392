"""Fixtures for the vision backend tests: real weights, real images, loaded once per session.

Locations come from the environment so CI and laptops agree:
models  = $AAS_TEST_MODELS_DIR, else $AAS_MODELS_DIR, else /work/shared/models, else ../shared/models;
data    = $AAS_TEST_DATA, else /work/shared/data, else ../shared/data (relative to the repo).
A test that needs a file that is absent is skipped with the path in the reason; nothing
else is ever skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _pick(env_names: tuple[str, ...], *fallbacks: Path) -> Path:
    for name in env_names:
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    for p in fallbacks:
        if p.is_dir():
            return p
    return fallbacks[0]


MODELS_DIR = _pick(
    ("AAS_TEST_MODELS_DIR", "AAS_MODELS_DIR"), Path("/work/shared/models"), REPO.parent / "shared" / "models"
)
DATA_DIR = _pick(("AAS_TEST_DATA",), Path("/work/shared/data"), REPO.parent / "shared" / "data")


def need_file(path: Path) -> Path:
    """``path`` if it exists; a missing asset is a broken setup, so the test fails and says which."""
    if not path.is_file():
        pytest.fail(f"missing test asset: {path} (set AAS_TEST_MODELS_DIR / AAS_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def model_file() -> Callable[[str], Path]:
    """``model_file("scrfd_2.5g.onnx")`` -> path in the models folder (skip if absent)."""
    return lambda name: need_file(MODELS_DIR / name)


@pytest.fixture(scope="session")
def load_image() -> Callable[[str], np.ndarray]:
    """``load_image("group/kids_group8.jpg")`` -> BGR uint8 array (skip if absent)."""
    cache: dict[str, np.ndarray] = {}

    def _load(rel: str) -> np.ndarray:
        if rel not in cache:
            img = cv2.imread(str(need_file(DATA_DIR / rel)), cv2.IMREAD_COLOR)
            assert img is not None, f"cv2 could not decode {DATA_DIR / rel}"
            cache[rel] = img
        return cache[rel].copy()

    return _load


@pytest.fixture(scope="session")
def face_files() -> Callable[[str], list[Path]]:
    """``face_files("glint")`` -> sorted faces_dev images of that source (skip if none)."""

    def _files(prefix: str) -> list[Path]:
        files = sorted((DATA_DIR / "faces_dev").glob(f"{prefix}_*/*.jpg"))
        if not files:
            pytest.fail(f"no faces_dev/{prefix}_* images under {DATA_DIR} (set AAS_TEST_DATA)")
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
