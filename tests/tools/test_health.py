"""Missing and corrupted weight files: clear errors naming the file, and what the dashboard shows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aas_core.tools.health import FEATURE_LABELS, feature_availability, unavailable
from aas_core.vision import weights as registry
from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing


@pytest.fixture
def broken_models(tmp_path: Path, models_dir: Path) -> Path:
    """A models dir with a truncated scrfd_2.5g.onnx, an intact YuNet, and no ArcFace model."""
    d = tmp_path / "models"
    d.mkdir()
    data = (models_dir / "scrfd_2.5g.onnx").read_bytes()
    (d / "scrfd_2.5g.onnx").write_bytes(data[: len(data) // 3])  # an interrupted download
    shutil.copy(models_dir / "face_detection_yunet_2026may.onnx", d)
    registry.clear_hash_cache()
    return d


def test_registry_names_the_file_and_the_fix(broken_models: Path) -> None:
    with pytest.raises(ModelFileCorrupt) as corrupt:
        registry.resolve("scrfd_2.5g.onnx", broken_models)
    msg = str(corrupt.value)
    assert str(broken_models / "scrfd_2.5g.onnx") in msg and "aas models fetch scrfd_2.5g" in msg
    with pytest.raises(ModelFileMissing) as missing:
        registry.resolve("mobilefacenet.onnx", broken_models)
    assert "mobilefacenet.onnx" in str(missing.value) and "aas models fetch mobilefacenet" in str(missing.value)
    assert isinstance(missing.value, FileNotFoundError) and missing.value.filename.endswith("mobilefacenet.onnx")
    assert registry.resolve("face_detection_yunet_2026may.onnx", broken_models).is_file()


def test_same_size_tampered_file_is_caught_by_its_hash(tmp_path: Path, models_dir: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    data = bytearray((models_dir / "scrfd_500m.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "scrfd_500m.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFileCorrupt, match="sha256"):
        registry.resolve("scrfd_500m", d)


def test_loading_a_backend_with_a_truncated_file_fails_clearly(broken_models: Path) -> None:
    from aas_core.vision import backends

    with pytest.raises(ModelFileCorrupt, match="scrfd_2.5g.onnx"):
        backends.load_face_detector("scrfd", broken_models, model="scrfd_2.5g.onnx")
    with pytest.raises(ModelFileMissing, match="scrfd_500m.onnx"):
        backends.load_face_detector("scrfd", broken_models, model="scrfd_500m.onnx")


def test_loading_the_embedder_without_its_file_fails_clearly(broken_models: Path) -> None:
    from aas_core.vision.embed import ArcFaceOnnxEmbedder

    with pytest.raises(ModelFileMissing, match="mobilefacenet.onnx"):
        ArcFaceOnnxEmbedder("mobilefacenet.onnx", broken_models)


def test_pipeline_on_a_truncated_detector_names_the_file(broken_models: Path, models_dir: Path) -> None:
    """'fast' picks the first file present: the truncated one. Using it fails with its name."""
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import resolve_profile

    shutil.copy(models_dir / "mobilefacenet.onnx", broken_models)
    cfg, _ = resolve_profile("fast", broken_models)
    assert cfg.profile == "fast" and cfg.face_model == "scrfd_2.5g.onnx"
    with pytest.raises(ModelFileCorrupt, match="scrfd_2.5g.onnx"):
        _ = Pipeline(cfg, broken_models).face_detector
    health = feature_availability(broken_models)
    assert "scrfd_2.5g.onnx is corrupt" in health["profile:fast"]
    assert "aas models fetch scrfd_2.5g" in health["profile:fast"]
    assert health["face_recognition"] is None and health["face_detection"] is None  # YuNet / mobilefacenet ok


def test_feature_availability_says_what_is_missing_and_why(broken_models: Path) -> None:
    health = feature_availability(broken_models)
    assert set(health) == set(FEATURE_LABELS)
    fast = health["profile:fast"]
    assert fast and "scrfd_2.5g.onnx is corrupt" in fast and "mobilefacenet.onnx missing" in fast
    assert "mobilefacenet.onnx missing (run `aas models fetch mobilefacenet`)" in health["face_recognition"]
    assert health["profile:accurate"] is not None
    assert health["face_detection"] is None  # YuNet is intact
    assert health["profile:offline"] is None  # dlib ships with the Python packages
    assert "offline dlib profile still works" in health["face_recognition"]
    assert health["person_detection"] and "yolov8n_int8.onnx missing" in health["person_detection"]
    labelled = unavailable(broken_models)
    assert FEATURE_LABELS["profile:fast"] in labelled and FEATURE_LABELS["profile:offline"] not in labelled


def test_everything_available_with_the_shared_models(models_dir: Path) -> None:
    health = feature_availability(models_dir)
    assert health["profile:fast"] is None and health["face_detection"] is None
    assert health["face_recognition"] is None and health["video_enrollment"] is None


def test_an_empty_models_dir_leaves_only_offline(tmp_path: Path) -> None:
    health = feature_availability(tmp_path)
    assert health["profile:offline"] is None
    assert all(health[k] for k in ("profile:fast", "profile:accurate", "person_detection", "super_resolution"))
