"""CLAHE contrast enhancement: the cheap fix for dark or back-lit classroom faces.

Contrast-limited adaptive histogram equalisation on the L channel of CIE LAB only, so
colours (a, b) are kept: equalising B, G and R separately would shift skin tones. Scale 1:
it changes no geometry, so landmarks and boxes stay valid.
"""

from __future__ import annotations

import cv2
import numpy as np

from aas_core.vision._backend_utils import check_bgr_image


class ClaheEnhancer:
    """Implements :class:`~aas_core.vision.types.Enhancer` with ``scale = 1``.

    Args:
        clip_limit: OpenCV's contrast limit per tile (2.0 = mild; higher amplifies noise).
        tile_grid: tiles per side; face crops are small, so 4x4 keeps tiles >= ~8 px on a
            32 px face instead of OpenCV's 8x8 default made for whole photos.
    """

    scale = 1

    def __init__(self, clip_limit: float = 2.0, tile_grid: int = 4) -> None:
        if clip_limit <= 0:
            raise ValueError(f"clip_limit must be > 0, got {clip_limit}")
        if tile_grid < 1:
            raise ValueError(f"tile_grid must be >= 1, got {tile_grid}")
        self.clip_limit = float(clip_limit)
        self.tile_grid = int(tile_grid)
        self.name = "clahe"

    def enhance(self, crop_bgr: np.ndarray) -> np.ndarray:
        """Same-size BGR uint8 crop with equalised lightness."""
        img = check_bgr_image(crop_bgr, "crop")
        # a CLAHE object keeps per-call state: one per call is cheap and thread-safe
        clahe = cv2.createCLAHE(clipLimit=self.clip_limit, tileGridSize=(self.tile_grid, self.tile_grid))
        lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
        lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
        return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)

    def __repr__(self) -> str:
        return f"ClaheEnhancer(clip_limit={self.clip_limit}, tile_grid={self.tile_grid})"
