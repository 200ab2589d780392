"""PyTorch super-resolution models loaded with spandrel (Real-ESRGAN, ESRGAN/RRDB, SRVGG, ...).

spandrel recognises the architecture from the state dict, so one class serves
``realesr-animevideov3.pth`` (SRVGGNetCompact, fast), ``RealESRGAN_x4plus.pth`` and the
original ``RRDB_ESRGAN_x4.pth`` (RRDBNet, old key layout). It also unpickles checkpoints
with a restricted unpickler (no arbitrary code from a ``.pth``) and the registry checks the
file's sha256 before that. Runs on CPU under ``torch.inference_mode``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aas_core.vision._backend_utils import check_bgr_image
from aas_core.vision.errors import ModelFileCorrupt

log = logging.getLogger(__name__)


def import_spandrel() -> Any:
    """``import spandrel`` (it imports torchvision at module level).

    Where torchvision's compiled ops cannot load next to this torch (the CPU build with the
    registry's CUDA torchvision wheel), the isolated compatibility module registers a CPU
    ``torchvision::nms`` first so the import succeeds; on a normal install it does nothing.
    """
    from aas_core.vision._torchvision_compat import ensure_torchvision_nms

    ensure_torchvision_nms()
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

        from aas_core.vision import weights as registry

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
