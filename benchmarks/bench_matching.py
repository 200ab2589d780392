"""Benchmark Gallery.match: a large roster against one snapshot's faces.

Usage::

    .venv/bin/python benchmarks/bench_matching.py [--students 10000] [--samples 5] [--queries 40] [--dim 128]

Prints the median wall time of ``Gallery.match`` (scores + top-k + one-to-one assignment)
over ``--runs`` runs; the target is < 20 ms for 10,000 x 5 vs 40 on a 2-core CPU.
Queries are noisy copies of enrolled samples so that the assignment has real work to do.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aas_core.vision.matching import Gallery  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--dim", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--ragged", action="store_true", help="1..2*samples samples per student (reduceat path)")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    for dim in a.dim:
        counts = rng.integers(1, 2 * a.samples, a.students) if a.ragged else np.full(a.students, a.samples)
        ids = np.repeat([f"s{i:05d}" for i in range(a.students)], counts)
        emb = rng.standard_normal((len(ids), dim)).astype(np.float32)
        t = time.perf_counter()
        g = Gallery(list(ids), emb, "bench")
        build_ms = (time.perf_counter() - t) * 1000
        pick = rng.choice(len(ids), a.queries, replace=False)
        q = emb[pick] + 0.8 * rng.standard_normal((a.queries, dim)).astype(np.float32)
        g.match(q, threshold=0.3, model_name="bench")  # warm-up
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            res = g.match(q, threshold=0.3, top_k=3, model_name="bench")
            times.append((time.perf_counter() - t) * 1000)
        correct = sum(r == ids[p] for r, p in zip(res.assigned, pick))
        print(
            f"{a.students} students x {'ragged' if a.ragged else a.samples} samples ({len(ids)} rows), "
            f"{a.queries} queries, d={dim}: match median {statistics.median(times):.2f} ms "
            f"(min {min(times):.2f}, max {max(times):.2f}); build {build_ms:.0f} ms; "
            f"{correct}/{a.queries} assigned correctly"
        )


if __name__ == "__main__":
    main()
