"""PyTorch super-resolution models loaded with spandrel (Real-ESRGAN, ESRGAN/RRDB, SRVGG, ...).

spandrel recognises the architecture from the state dict, so one class serves
``realesr-animevideov3.pth`` (SRVGGNetCompact, fast), ``RealESRGAN_x4plus.pth`` and the
original ``RRDB_ESRGAN_x4.pth`` (RRDBNet, old key layout). It also unpickles checkpoints
with a restricted unpickler (no arbitrary code from a ``.pth``) and the registry checks the
file's sha256 before that. Runs on CPU under ``torch.inference_mode``.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aas_core.vision._backend_utils import check_bgr_image
from aas_core.vision.errors import ModelFileCorrupt

log = logging.getLogger(__name__)
_import_lock = threading.Lock()


def _torchvision_stub() -> dict[str, types.ModuleType]:
    """Minimal stand-in for the torchvision names spandrel imports at module level.

    Only LaMa (inpainting) and RestoreFormer use them, and this module loads neither.
    """

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def _unavailable(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("torchvision is not usable in this environment (see aas_core/vision/enhance/spandrel_sr.py)")

    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    fn.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    fn.rotate = fn.normalize = _unavailable  # type: ignore[attr-defined]
    tv.transforms = tr  # type: ignore[attr-defined]
    tr.functional = fn  # type: ignore[attr-defined]
    return {m.__name__: m for m in (tv, tr, fn)}


def import_spandrel() -> Any:
    """``import spandrel``, surviving a torchvision that cannot load.

    spandrel imports torchvision for two architectures we never use. A torchvision wheel
    built for another torch (e.g. the CUDA build next to CPU torch: "operator
    torchvision::nms does not exist") would make every SR model unusable. In that case
    spandrel is imported against a stub that is removed again right after, so other code
    still sees the real import error. The proper fix is a matching torchvision wheel.
    """
    with _import_lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        try:
            import torchvision  # noqa: F401
        except Exception as exc:  # RuntimeError / OSError from a mismatched binary
            log.warning("torchvision fails to import (%s); importing spandrel with a stub. "
                        "Fix: install the torchvision wheel built for this torch", exc)
            saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "torchvision"}
            stub = _torchvision_stub()
            sys.modules.update(stub)
            try:
                import spandrel
            finally:
                for k in stub:
                    sys.modules.pop(k, None)
                sys.modules.update(saved)
            return spandrel
        import spandrel

        return spandrel


#: Used when no model is named.
DEFAULT_MODEL = "realesr-animevideov3"


class SpandrelEnhancer:
    """Implements :class:`~aas_core.vision.types.Enhancer`; ``name`` e.g. ``"sr:realesr-animevideov3"``.

    Args:
        model: manifest name, file name in ``models_dir`` or path of the ``.pth``/``.safetensors``.
        models_dir: where weights live (default: the ``models_dir`` setting).
        max_input_pixels: refuse larger crops (x4 SR of a big image takes seconds and GBs
            on CPU; the pipeline only sends small faces).
    """

    def __init__(
        self, model: str | Path | None = None, models_dir: str | Path | None = None,
        max_input_pixels: int = 512 * 512,
    ) -> None:
        import torch

        from aas_core.vision import registry

        spandrel = import_spandrel()
        self.model_path = registry.resolve(model or DEFAULT_MODEL, models_dir)
        try:
            desc = spandrel.ModelLoader(device="cpu").load_from_file(str(self.model_path))
        except Exception as exc:  # spandrel: UnsupportedModelError, pickle / zip errors on a bad file
            raise ModelFileCorrupt(self.model_path, f"spandrel cannot load it: {exc}") from exc
        if not isinstance(desc, spandrel.ImageModelDescriptor):
            raise ValueError(f"{self.model_path.name} is a {type(desc).__name__}, not a single-image model")
        if desc.input_channels != 3 or desc.output_channels != 3:
            raise ValueError(f"{self.model_path.name}: needs a 3-channel RGB model, got "
                             f"{desc.input_channels} -> {desc.output_channels} channels")
        self._desc = desc.to(torch.device("cpu")).to(torch.float32).eval()
        self.scale: int = int(desc.scale)
        self.architecture: str = desc.architecture.name
        self.name = f"sr:{self.model_path.stem}"
        self.max_input_pixels = int(max_input_pixels)

    def enhance(self, crop_bgr: np.ndarray) -> np.ndarray:
        """BGR uint8 crop ``scale`` times larger: BGR -> RGB float [0, 1] -> model -> BGR uint8."""
        import torch

        img = check_bgr_image(crop_bgr, "crop")
        h, w = img.shape[:2]
        if h * w > self.max_input_pixels:
            raise ValueError(f"crop {w}x{h} is larger than max_input_pixels={self.max_input_pixels}; "
                             "super-resolve face crops, not whole frames")
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0).contiguous()
        with torch.inference_mode():
            y = self._desc(x)  # pads to the model's size requirements and clamps to [0, 1]
            out = y[0].permute(1, 2, 0).mul_(255.0).round_().to(torch.uint8).numpy()
        return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)

    def __repr__(self) -> str:
        return f"SpandrelEnhancer({self.name!r}, {self.architecture}, scale={self.scale})"
