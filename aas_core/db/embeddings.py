"""Embeddings as raw float32 little-endian bytes: portable, compact, never pickle."""

from __future__ import annotations

import numpy as np


def to_blob(vec: np.ndarray) -> bytes:
    v = np.asarray(vec, dtype="<f4").reshape(-1)
    if not np.all(np.isfinite(v)):
        raise ValueError("embedding contains NaN/inf")
    return v.tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    if len(blob) % 4:
        raise ValueError(f"embedding blob of {len(blob)} bytes is not float32")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
