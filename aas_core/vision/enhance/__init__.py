"""Face crop enhancers (BGR uint8 in, BGR uint8 out, ``scale`` times larger).

* :class:`ClaheEnhancer` (``"clahe"``, scale 1): contrast for dark faces, no model needed.
* :class:`OpenCvSrEnhancer` (``"sr:FSRCNN_x4"`` ...): OpenCV dnn_superres, fast and light.
* :class:`SpandrelEnhancer` (``"sr:realesr-animevideov3"`` ...): Real-ESRGAN / ESRGAN via spandrel.

Small faces (< ``sr_below_px``) are super-resolved before embedding, and the embedder
sees landmarks scaled by ``scale``. Timings per 32x32 crop: ``benchmarks/bench_enhance.py``.
The torch-based SpandrelEnhancer is imported lazily (torch costs ~1 s to import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

from aas_core.vision.enhance.clahe import ClaheEnhancer
from aas_core.vision.enhance.opencv_sr import OpenCvSrEnhancer

if TYPE_CHECKING:
    from aas_core.vision.enhance.spandrel_sr import SpandrelEnhancer

__all__ = ["ClaheEnhancer", "OpenCvSrEnhancer", "SpandrelEnhancer"]

# SpandrelEnhancer (torch) is imported on first access (lazy_loader, as in faces/ and persons/).
__getattr__, _, _ = lazy_loader.attach(__name__, submod_attrs={"spandrel_sr": ["SpandrelEnhancer"]})
