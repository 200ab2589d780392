"""Benchmark the enhancers on a real 32x32 face crop (median ms per crop, CPU).

Usage::

    .venv/bin/python benchmarks/bench_enhance.py [--models DIR] [--size 32] [--runs 30]

Every enhancer whose weights are present in the models dir is timed; missing ones are listed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aas_core.vision.enhance import ClaheEnhancer, OpenCvSrEnhancer, SpandrelEnhancer  # noqa: E402
from aas_core.vision.errors import ModelFileMissing  # noqa: E402

OPENCV = ["FSRCNN_x2", "FSRCNN_x3", "FSRCNN_x4", "ESPCN_x2", "ESPCN_x3", "ESPCN_x4", "LapSRN_x2", "LapSRN_x4"]
SPANDREL = ["realesr-animevideov3", "RealESRGAN_x4plus", "RRDB_ESRGAN_x4"]


def main() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("AAS_MODELS_DIR", shared / "models")))
    ap.add_argument("--image", type=Path, default=Path(os.environ.get("AAS_TEST_DATA", shared / "data"))
                    / "lowres" / "hepburn_225x225.jpg")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    img = cv2.imread(str(a.image))
    if img is None:
        raise SystemExit(f"cannot read {a.image}")
    h, w = img.shape[:2]
    s = min(a.size, h, w)
    crop = np.ascontiguousarray(img[(h - s) // 2 : (h + s) // 2, (w - s) // 2 : (w + s) // 2])
    factories = [lambda: ClaheEnhancer()]
    factories += [lambda n=n: OpenCvSrEnhancer(n, a.models) for n in OPENCV]
    factories += [lambda n=n: SpandrelEnhancer(n, a.models) for n in SPANDREL]
    print(f"{s}x{s} crop of {a.image.name}, median of {a.runs} runs")
    for make in factories:
        try:
            enh = make()
        except ModelFileMissing as exc:
            print(f"  (skipped: {exc})")
            continue
        enh.enhance(crop)  # warm-up (allocations, lazy init)
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            out = enh.enhance(crop)
            times.append((time.perf_counter() - t) * 1000)
        size = f"{out.shape[1]}x{out.shape[0]}"
        print(f"  {enh.name:28s} x{enh.scale} -> {size:9s} {statistics.median(times):8.2f} ms")


if __name__ == "__main__":
    main()
