"""Face detectors (boxes + 5 InsightFace-order landmarks) and the two face-finding flows.

Backends: SCRFD (InsightFace), YuNet (OpenCV), dlib HOG, dlib CNN — one module each, picked
via ``aas_core.vision.backends``. Flows (``faces.flows``): faces inside person boxes, or
SAHI-style tiling of the whole frame. Classes are exposed lazily (no heavy imports here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aas_core.vision.faces.dlib_cnn import DlibCnnFaceDetector
    from aas_core.vision.faces.dlib_hog import DlibHogFaceDetector
    from aas_core.vision.faces.flows import detect_faces_in_persons, detect_faces_tiled
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector
    from aas_core.vision.faces.yunet import YunetFaceDetector

__all__ = [
    "DlibCnnFaceDetector",
    "DlibHogFaceDetector",
    "ScrfdFaceDetector",
    "YunetFaceDetector",
    "detect_faces_in_persons",
    "detect_faces_tiled",
]

_MODULES = {
    "ScrfdFaceDetector": "scrfd",
    "YunetFaceDetector": "yunet",
    "DlibHogFaceDetector": "dlib_hog",
    "DlibCnnFaceDetector": "dlib_cnn",
    "detect_faces_in_persons": "flows",
    "detect_faces_tiled": "flows",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
