"""Person detectors (COCO class 0). One module per backend; pick one via ``aas_core.vision.backends``.

Classes are exposed lazily so importing this package does not load ONNX Runtime, torch or
Ultralytics until a backend is actually used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aas_core.vision.persons.ultralytics_yolo import UltralyticsPersonDetector
    from aas_core.vision.persons.yolo_onnx import YoloOnnxPersonDetector
    from aas_core.vision.persons.yolox_onnx import YoloxOnnxPersonDetector

__all__ = ["UltralyticsPersonDetector", "YoloOnnxPersonDetector", "YoloxOnnxPersonDetector"]

_MODULES = {
    "YoloOnnxPersonDetector": "yolo_onnx",
    "YoloxOnnxPersonDetector": "yolox_onnx",
    "UltralyticsPersonDetector": "ultralytics_yolo",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
