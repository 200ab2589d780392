"""ROC / DET curves and the error rates at a threshold, from genuine and impostor similarity scores.

Pure numpy (the Evaluation page plots them with plotly). A pair is *accepted* when its
score is >= the threshold, the same rule ``Gallery.match`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Curve:
    thresholds: np.ndarray
    far: np.ndarray  # impostor pairs accepted
    tar: np.ndarray  # genuine pairs accepted (1 - FRR)

    @property
    def frr(self) -> np.ndarray:
        return 1.0 - self.tar


def rates_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TAR, FAR) at ``threshold``; NaN for an empty side."""
    g, i = np.asarray(genuine, float), np.asarray(impostor, float)
    tar = float(np.mean(g >= threshold)) if g.size else float("nan")
    far = float(np.mean(i >= threshold)) if i.size else float("nan")
    return tar, far


def roc(genuine: np.ndarray, impostor: np.ndarray, points: int = 400) -> Curve:
    """TAR and FAR over ``points`` thresholds spanning every score (descending thresholds)."""
    g, i = np.sort(np.asarray(genuine, float)), np.sort(np.asarray(impostor, float))
    both = np.concatenate([g, i])
    if both.size == 0:
        z = np.zeros(0)
        return Curve(z, z, z)
    lo, hi = float(both.min()), float(both.max())
    thr = np.linspace(hi + 1e-6, lo - 1e-6, points)
    # count of scores >= t via searchsorted on the sorted arrays (vectorised, O(points log n))
    tar = (g.size - np.searchsorted(g, thr, side="left")) / max(1, g.size)
    far = (i.size - np.searchsorted(i, thr, side="left")) / max(1, i.size)
    return Curve(thr, far, tar)


def eer(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(equal error rate, threshold where FAR = FRR), approximately (grid of 2000 points)."""
    c = roc(genuine, impostor, 2000)
    if c.thresholds.size == 0:
        return float("nan"), float("nan")
    k = int(np.argmin(np.abs(c.far - c.frr)))
    return float((c.far[k] + c.frr[k]) / 2), float(c.thresholds[k])
