"""Small helpers shared by the detector backends: input checks and ONNX Runtime sessions.

Kept private (leading underscore): backends import them, callers use ``backends.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aas_core.vision.errors import ModelFileCorrupt, require_file

if TYPE_CHECKING:
    import onnxruntime

_CPU = "CPUExecutionProvider"


def check_bgr_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate a BGR frame and return it as a C-contiguous uint8 (H, W, 3) array.

    Every backend calls this first so that a grayscale, RGBA, empty or float image fails
    with a message that says what to do, instead of an opaque error deep inside ONNX
    Runtime, OpenCV or dlib (or, worse, silently wrong detections).
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        hint = ""
        if image.ndim == 2:
            hint = " (convert grayscale with cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))"
        elif image.ndim == 3 and image.shape[2] == 4:
            hint = " (drop alpha with cv2.cvtColor(img, cv2.COLOR_BGRA2BGR))"
        raise ValueError(f"{what} must be a 3-channel BGR array of shape (H, W, 3), got {image.shape}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what} is empty: shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (0-255), got {image.dtype}")
    return np.ascontiguousarray(image)


def check_threshold(value: float, name: str = "conf_threshold") -> float:
    """Thresholds are probabilities; reject values outside [0, 1] loudly."""
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return v


def resolve_providers(requested: Sequence[str] | None = None) -> list[str]:
    """ONNX Runtime providers to use, in order: the requested (or configured) ones that exist.

    ``None`` means the ``onnx_providers`` setting. Providers this ONNX Runtime build lacks
    (e.g. CUDA on a CPU-only install) are skipped; CPU is always the last resort, so a
    laptop and a GPU server run the same configuration.
    """
    import onnxruntime as ort

    if requested is None:
        from aas_core.config import get_settings

        requested = get_settings().onnx_providers
    available = set(ort.get_available_providers())
    chosen = [p for p in requested if p in available]
    if _CPU not in chosen:
        chosen.append(_CPU)
    return chosen


def physical_cores() -> int:
    """Physical CPU cores (psutil when installed, else ``os.cpu_count()``).

    ONNX Runtime's convolution kernels saturate a core's vector units: a second thread on the
    SMT sibling of a busy core adds contention, not speed.
    """
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except ImportError:
        n = None
    return int(n or os.cpu_count() or 1)


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    """Session options used by every backend: one inference at a time on all physical cores.

    The pipeline runs one frame at a time, so intra-op parallelism over the physical cores is
    what makes a single inference fast; ONNX Runtime's default may pick fewer. Graph
    optimisation is ``ORT_ENABLE_ALL`` (ONNX Runtime's default, set here explicitly), the CPU
    memory arena and memory patterns stay on, execution is sequential. Spin-waiting is off:
    the pipeline alternates several sessions (persons, faces, embedder) and a session's idle
    threads spinning after its run steal the cores the next one needs.
    Measured on the 2-core dev box, person flow on a 1920x1080 frame (YOLO + 9 SCRFD crops):
    median 513-574 ms without spinning, 406-969 ms with it. The other settings, measured
    side by side (``benchmarks/detect_schedule.py --ort``: SCRFD 2.5g at 1152x672 and one
    mobilefacenet batch of 36 faces, 9 interleaved runs, quiet machine): ORT_ENABLE_EXTENDED
    0.87x / 0.55x the speed of ENABLE_ALL, no arena 0.80x / 0.72x, one thread 0.56x / 0.53x,
    memory patterns off 0.97x / 1.02x, spinning 1.05x / 1.04x alone but 0.68x / 0.65x on the
    busy shared machine: the settings below are kept (docs/EVALUATION.md#detection-schedule).
    IOBinding is not used: on the CPU provider inputs and outputs already live in host
    memory, so it would save one copy of a few MB per call at most.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or physical_cores())
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only: the int8 models otherwise warn on every load
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def onnx_session(
    path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None
) -> onnxruntime.InferenceSession:
    """Open an ONNX Runtime session; a missing file or an unloadable graph raise our own errors."""
    import onnxruntime as ort

    p = require_file(path)
    try:
        return ort.InferenceSession(
            str(p), sess_options=session_options(threads), providers=resolve_providers(providers)
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph classes
        raise ModelFileCorrupt(p, f"ONNX Runtime cannot load it: {exc}") from exc


def letterbox(
    image: np.ndarray, size: tuple[int, int], pad_value: int = 114, center: bool = True
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio into ``size`` = (width, height) and pad the rest.

    Returns the padded image, the scale applied and the (left, top) padding, i.e. what is
    needed to map boxes back: ``frame = (net - pad) / scale``. YOLOv8 pads centred, YOLOX
    pads bottom/right only (``center=False``); both use grey 114.
    """
    h, w = image.shape[:2]
    tw, th = size
    scale = min(tw / w, th / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image if (nw, nh) == (w, h) else cv2_resize(image, (nw, nh))
    left = (tw - nw) // 2 if center else 0
    top = (th - nh) // 2 if center else 0
    out = np.full((th, tw, 3), pad_value, dtype=np.uint8)
    out[top : top + nh, left : left + nw] = resized
    return out, scale, (left, top)


def cv2_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize`` with the interpolation that suits the direction (area down, linear up)."""
    import cv2

    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if size[0] * size[1] < w * h else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def shrink_to(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most ``max_side`` (None: unchanged); returns (image, scale).

    Detectors that cost O(pixels) (RetinaFace, YuNet) run on the shrunk copy and divide
    their boxes by ``scale`` to get back to frame pixels.
    """
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    return cv2_resize(image, (max(1, round(w * scale)), max(1, round(h * scale)))), scale


def network_input_size(session: onnxruntime.InferenceSession, imgsz: int | tuple[int, int]) -> tuple[int, int]:
    """(width, height) to feed a YOLO-family export: its own size if static, else ``imgsz`` rounded up to 32."""
    h, w = session.get_inputs()[0].shape[2:4]
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return (w, h)  # a static export only accepts its own size
    tw, th = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    return (int(np.ceil(tw / 32) * 32), int(np.ceil(th / 32) * 32))


def cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """(N, 4) centre/size boxes -> (N, 4) corner boxes."""
    half = cxcywh[:, 2:] / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
