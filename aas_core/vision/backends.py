"""Registry of person and face detector backends, and cached loaders.

Settings and the UI refer to detectors by a short name ("scrfd", "yolo-onnx", ...). Each
name maps to a factory ``factory(models_dir, model=None, **opts)`` that resolves its weight
file as ``models_dir / model`` (``model`` None = the backend's default file; an absolute
path is used as is) and builds the detector.
``load_person_detector`` / ``load_face_detector`` cache instances per (name, folder,
options), so a Streamlit rerun or a second camera never loads the same weights twice.

Checksums and downloads are the model registry's job (``aas models fetch``); here a
missing file just raises :class:`~aas_core.vision.errors.ModelFileMissing`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from aas_core.vision.errors import require_file
from aas_core.vision.types import Embedder, Enhancer, FaceDetector, PersonDetector

#: Default weight file per backend (inside the models folder).
DEFAULT_MODEL_FILES: Mapping[str, str] = {
    "yolo-onnx": "yolov8n_int8.onnx",
    "yolox-onnx": "yolox_nano.onnx",
    "ultralytics": "yolov8n_int8.onnx",
    "scrfd": "scrfd_2.5g.onnx",
    "yunet": "face_detection_yunet_2026may.onnx",
    "dlib-cnn": "mmod_human_face_detector.dat",
    "retinaface": "mobilenet0.25_Final.pth",
}

#: Short names accepted for SCRFD's ``model`` option (InsightFace ships the same nets as det_*).
SCRFD_ALIASES: Mapping[str, str] = {
    "2.5g": "scrfd_2.5g.onnx",
    "500m": "scrfd_500m.onnx",
    "10g": "det_10g.onnx",
    "34g": "scrfd_34g.onnx",
}


def model_path(models_dir: str | Path, model: str | Path) -> Path:
    """``models_dir / model`` (or ``model`` itself if absolute); ModelFileMissing if absent."""
    p = Path(model)
    return require_file(p if p.is_absolute() else Path(models_dir) / p)


def _yolo_onnx(models_dir: Path, model: str | None = None, **opts: Any) -> PersonDetector:
    from aas_core.vision.persons.yolo_onnx import YoloOnnxPersonDetector

    return YoloOnnxPersonDetector(model_path(models_dir, model or DEFAULT_MODEL_FILES["yolo-onnx"]), **opts)


def _yolox_onnx(models_dir: Path, model: str | None = None, **opts: Any) -> PersonDetector:
    from aas_core.vision.persons.yolox_onnx import YoloxOnnxPersonDetector

    return YoloxOnnxPersonDetector(model_path(models_dir, model or DEFAULT_MODEL_FILES["yolox-onnx"]), **opts)


def _ultralytics(models_dir: Path, model: str | None = None, **opts: Any) -> PersonDetector:
    from aas_core.vision.persons.ultralytics_yolo import UltralyticsPersonDetector

    return UltralyticsPersonDetector(model_path(models_dir, model or DEFAULT_MODEL_FILES["ultralytics"]), **opts)


def _scrfd(models_dir: Path, model: str | None = None, **opts: Any) -> FaceDetector:
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector

    model = str(model or DEFAULT_MODEL_FILES["scrfd"])
    model = SCRFD_ALIASES.get(model, model)
    if not model.endswith(".onnx"):
        raise ValueError(f"scrfd model must be an .onnx file or one of {sorted(SCRFD_ALIASES)}, got {model!r}")
    return ScrfdFaceDetector(model_path(models_dir, model), **opts)


def _yunet(models_dir: Path, model: str | None = None, **opts: Any) -> FaceDetector:
    from aas_core.vision.faces.yunet import YunetFaceDetector

    return YunetFaceDetector(model_path(models_dir, model or DEFAULT_MODEL_FILES["yunet"]), **opts)


def _dlib_hog(models_dir: Path, model: str | None = None, **opts: Any) -> FaceDetector:
    """HOG has no weight file; ``model`` is accepted (as None) so every factory has one signature."""
    from aas_core.vision.faces.dlib_hog import DlibHogFaceDetector

    if model is not None:
        raise ValueError(f"dlib-hog has no weight file; got model={model!r}")
    return DlibHogFaceDetector(**opts)


def _dlib_cnn(models_dir: Path, model: str | None = None, **opts: Any) -> FaceDetector:
    """An explicit ``model``, else the models folder's copy, else the face_recognition_models one."""
    from aas_core.vision.faces.dlib_cnn import DlibCnnFaceDetector

    if model is not None:
        return DlibCnnFaceDetector(model_path(models_dir, model), **opts)
    local = Path(models_dir) / DEFAULT_MODEL_FILES["dlib-cnn"]
    return DlibCnnFaceDetector(local if local.is_file() else None, **opts)


def _retinaface(models_dir: Path, model: str | None = None, **opts: Any) -> FaceDetector:
    """RetinaFace-MobileNet0.25 in plain torch (``.pth`` state dict, loaded with weights_only)."""
    from aas_core.vision.faces.retinaface_torch import RetinaFaceTorchDetector

    return RetinaFaceTorchDetector(model_path(models_dir, model or DEFAULT_MODEL_FILES["retinaface"]), **opts)


PERSON_BACKENDS: dict[str, Callable[..., PersonDetector]] = {
    "yolo-onnx": _yolo_onnx,
    "yolox-onnx": _yolox_onnx,
    "ultralytics": _ultralytics,
}

FACE_BACKENDS: dict[str, Callable[..., FaceDetector]] = {
    "scrfd": _scrfd,
    "yunet": _yunet,
    "dlib-hog": _dlib_hog,
    "dlib-cnn": _dlib_cnn,
    "retinaface": _retinaface,
}


def _arcface(models_dir: Path, model: str | None = None, **opts: Any) -> Embedder:
    from aas_core.vision.embed.arcface_onnx import ArcFaceOnnxEmbedder

    return ArcFaceOnnxEmbedder(model, models_dir, **opts)


def _dlib_resnet(models_dir: Path, model: str | None = None, **opts: Any) -> Embedder:
    from aas_core.vision.embed.dlib_resnet import DlibResnetEmbedder

    return DlibResnetEmbedder(model, models_dir, **opts)


def _sr_spandrel(models_dir: Path, model: str | None = None, **opts: Any) -> Enhancer:
    from aas_core.vision.enhance.spandrel_sr import SpandrelEnhancer

    return SpandrelEnhancer(model, models_dir, **opts)


def _sr_opencv(models_dir: Path, model: str | None = None, **opts: Any) -> Enhancer:
    from aas_core.vision.enhance.opencv_sr import OpenCvSrEnhancer

    return OpenCvSrEnhancer(model or "FSRCNN_x4", models_dir, **opts)


def _clahe(models_dir: Path, model: str | None = None, **opts: Any) -> Enhancer:
    from aas_core.vision.enhance.clahe import ClaheEnhancer

    return ClaheEnhancer(**opts)


EMBEDDERS: dict[str, Callable[..., Embedder]] = {"arcface-onnx": _arcface, "dlib-resnet": _dlib_resnet}

ENHANCERS: dict[str, Callable[..., Enhancer]] = {"sr-spandrel": _sr_spandrel, "sr-opencv": _sr_opencv,
                                                "clahe": _clahe}


def _freeze(value: Any) -> Hashable:
    """Options -> a hashable cache key (lists become tuples, dicts sorted item tuples)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    try:
        hash(value)
    except TypeError as exc:
        raise TypeError(f"backend option value {value!r} is not hashable") from exc
    return value


def _models_dir(models_dir: str | Path | None) -> str:
    if models_dir is None:
        from aas_core.config import get_settings

        s = get_settings()
        models_dir = s.resolved(s.models_dir)
    return str(Path(models_dir).expanduser().resolve())


#: kind -> registry; another stage's loader is one more entry here plus a ``load_*`` wrapper.
_REGISTRIES: dict[str, Mapping[str, Callable[..., Any]]] = {
    "person": PERSON_BACKENDS, "face": FACE_BACKENDS, "embed": EMBEDDERS, "enhance": ENHANCERS}


@lru_cache(maxsize=32)
def _cached(kind: str, name: str, models_dir: str, frozen: tuple[tuple[str, Hashable], ...]) -> Any:
    registry = _REGISTRIES[kind]
    try:
        factory = registry[name]
    except KeyError:
        raise ValueError(f"unknown {kind} backend {name!r}; choose one of {sorted(registry)}") from None
    # Frozen lists arrive as tuples, which every option taking a sequence accepts.
    return factory(Path(models_dir), **dict(frozen))


def load_person_detector(name: str, models_dir: str | Path | None = None, **opts: Any) -> PersonDetector:
    """The person detector ``name`` (see ``PERSON_BACKENDS``), loaded once per name/folder/options.

    ``models_dir`` defaults to the ``models_dir`` setting; ``opts`` go to the backend's
    constructor (``model=`` picks another weight file).
    """
    return _cached("person", name, _models_dir(models_dir), _freeze(opts))  # type: ignore[arg-type]


def load_face_detector(name: str, models_dir: str | Path | None = None, **opts: Any) -> FaceDetector:
    """The face detector ``name`` (see ``FACE_BACKENDS``), loaded once per name/folder/options."""
    return _cached("face", name, _models_dir(models_dir), _freeze(opts))  # type: ignore[arg-type]


def load_embedder(name: str, models_dir: str | Path | None = None, **opts: Any) -> Embedder:
    """The embedder ``name`` (see ``EMBEDDERS``), loaded once per name/folder/options."""
    return _cached("embed", name, _models_dir(models_dir), _freeze(opts))  # type: ignore[arg-type]


def load_enhancer(name: str, models_dir: str | Path | None = None, **opts: Any) -> Enhancer:
    """The enhancer ``name`` (see ``ENHANCERS``), loaded once per name/folder/options."""
    return _cached("enhance", name, _models_dir(models_dir), _freeze(opts))  # type: ignore[arg-type]


def clear_cache() -> None:
    """Forget loaded detectors (e.g. after ``aas models fetch`` replaced a file)."""
    _cached.cache_clear()
