"""Matching at institution scale: exact brute force vs bf16-bounded exact search vs two-stage (vs faiss HNSW).

Usage::

    .venv/bin/python benchmarks/matching_scale.py [--students 10000 100000] [--samples 5]
        [--dim 512] [--queries 2000] [--batch 40] [--strangers 4] [--k 32 64] [--faiss] [--run-length 10]

Synthetic gallery shaped like ArcFace embeddings rather than isotropic noise: identity
centres and per-photo noise come from an anisotropic Gaussian (power-law spectrum, a small
common offset) so that impostor cosines are ~0.02 +- 0.1 and genuine ones ~0.67 +- 0.17,
close to mobilefacenet on faces_dev (genuine 0.688 +- 0.188, impostor 0.022 +- 0.107;
docs/EVALUATION.md). Each sample mixes its centre and noise with a per-photo quality; 3 % of
students have two "modes" (2 of their 5 samples, and half of their queries, come from a
second centre), the case where a student's best sample is far from the mean.

Queries come in snapshots of ``--batch`` faces: ``batch - strangers`` new photos of distinct
enrolled students plus ``--strangers`` people who are not enrolled. Printed per gallery size:

* median ms of ``Gallery.match`` (scores + top-3 + one-to-one assignment, threshold 0.42),
  exact brute force, the bf16-bounded exact search (``search="bf16"``: bf16 stage 1 over every
  sample with proven error bounds, fp32 stage 2 on the students that can reach the cut) and
  two-stage for each K, timed in turns of ``--run-length`` snapshots per method;
* top-1 agreement with brute force (id and score), separately for enrolled faces and
  strangers, top-3 agreement, and agreement of the assignment (the attendance decision);
  for bf16, the mean number of students scored exactly in stage 2 per face;
* memory of each structure.

Fixed seeds; the machine is shared, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aas_core.vision.matching import BF16_BLOCK_STUDENTS, Gallery, MatchResult, _Bf16Search, bf16_search_available

MODEL = "synthetic"
THRESHOLD = 0.42  # product default for ArcFace mobilefacenet


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Faces:
    """Anisotropic synthetic identity space."""

    def __init__(self, dim: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        k = np.arange(1, dim + 1, dtype=np.float64)
        self.scale = (k**-0.4).astype(np.float32)  # power-law spectrum: impostor cos std ~0.1
        # common offset holding ~1 % of the energy: impostor mean ~0.02
        self.offset = np.full(dim, np.sqrt(0.01 * np.sum(self.scale**2) / dim), np.float32)
        self.dim = dim

    def _draw(self, n: int) -> np.ndarray:
        z = self.rng.standard_normal((n, self.dim), dtype=np.float32) * self.scale
        return _unit(z + self.offset)

    def centres(self, n: int) -> np.ndarray:
        return self._draw(n)

    def photos(self, centres: np.ndarray) -> np.ndarray:
        """One photo per centre row: quality a ~ N(0.70, 0.25) in [0.05, 0.97] mixes centre and noise."""
        a = np.clip(self.rng.normal(0.70, 0.25, (len(centres), 1)), 0.05, 0.97).astype(np.float32)
        noise = self._draw(len(centres))
        return _unit(np.sqrt(a) * centres + np.sqrt(1 - a) * noise)


def build(faces: Faces, students: int, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Returns (ids, embeddings, centres, second-mode centres or NaN rows)."""
    centres = faces.centres(students)
    two_mode = faces.rng.random(students) < 0.03
    second = np.full_like(centres, np.nan)
    second[two_mode] = _unit(np.sqrt(0.35) * centres[two_mode] + np.sqrt(0.65) * faces.centres(int(two_mode.sum())))
    emb = np.empty((students * samples, faces.dim), np.float32)
    chunk = 10_000
    for lo in range(0, students, chunk):
        hi = min(students, lo + chunk)
        src = np.repeat(centres[lo:hi], samples, axis=0)
        slot = np.tile(np.arange(samples), hi - lo)
        alt = np.repeat(two_mode[lo:hi], samples) & (slot >= samples - 2)  # last 2 samples: second mode
        src[alt] = np.repeat(second[lo:hi], samples, axis=0)[alt]
        emb[lo * samples : hi * samples] = faces.photos(src)
    ids = np.repeat(np.array([f"s{i:06d}" for i in range(students)]), samples)
    return ids, emb, centres, second


def snapshots(faces: Faces, centres: np.ndarray, second: np.ndarray, n: int, batch: int, strangers: int):
    """Yields (queries (batch, d), true ids (None for strangers))."""
    students = len(centres)
    for _ in range(n // batch):
        who = faces.rng.choice(students, batch - strangers, replace=False)
        src = centres[who].copy()
        use2 = ~np.isnan(second[who, 0]) & (faces.rng.random(len(who)) < 0.5)
        src[use2] = second[who[use2]]
        q = np.vstack([faces.photos(src), faces.photos(faces.centres(strangers))])
        yield q, [f"s{i:06d}" for i in who] + [None] * strangers


def distribution(g: Gallery, ids: np.ndarray, emb: np.ndarray, batches) -> str:
    gen, imp = [], []
    for q, truth in batches[:5]:
        for qi, t in zip(q, truth):
            if t is None:
                continue
            own = emb[ids == t]
            gen.extend(own @ qi)
            imp.extend(emb[np.random.default_rng(len(imp)).integers(0, len(emb), 200)] @ qi)
    gen, imp = np.asarray(gen), np.asarray(imp)
    return f"genuine pair cos {gen.mean():.3f} +- {gen.std():.3f}, impostor {imp.mean():.3f} +- {imp.std():.3f}"


class _Compact:
    """The parts of a MatchResult the comparison reads (not its score matrix)."""

    def __init__(self, r: MatchResult) -> None:
        self.top_ids, self.top_similarity, self.assigned = r.top_ids, r.top_similarity, r.assigned

    def __len__(self) -> int:
        return len(self.top_ids)


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


def run(students: int, a: argparse.Namespace) -> None:
    faces = Faces(a.dim, a.seed)
    t0 = time.perf_counter()
    ids, emb, centres, second = build(faces, students, a.samples)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    g = Gallery(ids, emb, MODEL, two_stage=True)
    build_s = time.perf_counter() - t0
    # the bf16-bounded exact search on the same Gallery object (shares the fp32 templates)
    t0 = time.perf_counter()
    g._bf16 = _Bf16Search(g, BF16_BLOCK_STUDENTS)
    bf16_s = time.perf_counter() - t0
    batches = list(snapshots(faces, centres, second, a.queries, a.batch, a.strangers))
    print(f"\n== {students:,} students x {a.samples} samples, d={a.dim}: {g!r}")
    print(
        f"   data {gen_s:.1f} s, Gallery build {build_s:.1f} s, bf16 copy {bf16_s:.1f} s "
        f"(bf16 hardware: {bf16_search_available()}, oneDNN packed: {g._bf16.packed}); stage-1 mode rows {len(g._modes)}; {distribution(g, ids, emb, batches)}"
    )
    del emb

    methods: dict[str, object] = {"exact": None, "bf16-bounded exact": "bf16"}
    for k in a.k:
        methods[f"two-stage K={k}"] = k

    index = None
    if a.faiss:
        import faiss

        faiss.omp_set_num_threads(2)
        t0 = time.perf_counter()
        index = faiss.IndexHNSWFlat(a.dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.add(np.ascontiguousarray(g._templates[: len(g)]))
        print(f"   faiss HNSW32 build on the {len(g):,} mean templates: {time.perf_counter() - t0:.1f} s")
        for ef in a.ef:
            methods[f"HNSW ef={ef} K=64 + exact"] = ("hnsw", ef)

    def call(method, q):
        if method is None or method == "bf16":
            g.search = "exact" if method is None else "bf16"
            return g.match(q, THRESHOLD, model_name=MODEL)
        if isinstance(method, int):
            g.search, g.candidates = "two-stage", method
            return g.match(q, THRESHOLD, model_name=MODEL)
        _, ef = method  # faiss HNSW as stage 1 (means only), then Gallery's exact stage 2
        index.hnsw.efSearch = ef
        qn = _unit(q)
        _, cand = index.search(qn, 64)
        exact = g._exact_pairs(qn, cand.astype(np.intp))
        best = exact.argmax(axis=1)
        return [g.student_ids[c] for c in cand[np.arange(len(q)), best]], exact[np.arange(len(q)), best]

    times: dict[str, list[float]] = {name: [] for name in methods}
    pairs: list[int] = []
    results: dict[str, list] = {name: [] for name in methods}
    order = list(methods)
    # Methods take turns in runs of --run-length snapshots (rotating order), so a load change on
    # the shared machine spreads over all of them. Runs rather than single snapshots: numpy's
    # OpenBLAS threads keep spinning for a while after each brute-force GEMM and steal the two
    # cores from the torch threads of the call that follows, which a product process (one
    # search method) never sees; --run-length 1 shows that interference.
    n = a.run_length
    for ci, c0 in enumerate(range(0, len(batches), n)):
        rot = order[ci % len(order) :] + order[: ci % len(order)]
        for name in rot:
            for bi in range(c0, min(c0 + n, len(batches))):
                q = batches[bi][0]
                ms, res = timed(lambda name=name, q=q: call(methods[name], q))
                if methods[name] == "bf16":
                    pairs.extend(np.bincount(g._bf16.last_query_of_pair, minlength=len(q)).tolist())
                if bi >= 1:  # first snapshot = warm-up
                    times[name].append(ms)
                # keep only what the comparison needs: holding every MatchResult would keep its
                # (40, S) score matrix (16 MB at 100k students) alive, and each later call would
                # then page-fault fresh memory in (+20-45 ms measured), which no product loop does
                results[name].append((bi, _Compact(res) if isinstance(res, MatchResult) else res))
    for name in results:  # back in snapshot order
        results[name] = [r for _, r in sorted(results[name], key=lambda x: x[0])]

    truth = [t for _, tr in batches for t in tr]
    enrolled = np.array([t is not None for t in truth])
    ex = results["exact"]
    ex_top = [r.top_ids[i][0] for r in ex for i in range(len(r))]
    ex_sim = np.concatenate([r.top_similarity[:, 0] for r in ex])
    ex_asg = [x for r in ex for x in r.assigned]
    print(
        f"   {len(truth)} queries ({enrolled.sum()} enrolled, {(~enrolled).sum()} strangers) in snapshots of {a.batch}; "
        f"exact top-1 correct on enrolled {np.mean([t == e for t, e in zip(truth, ex_top) if t]):.4f}, "
        f"strangers named {sum(x is not None for x, t in zip(ex_asg, truth) if t is None)}"
    )
    accepted = ex_sim >= THRESHOLD  # queries whose exact top-1 reaches the threshold: the decisions
    print(
        "   | method | median ms | x exact | top-1 = exact (enrolled) | top-1 = exact (strangers) "
        f"| top-1 = exact where exact >= {THRESHOLD} | max |score diff| on agreeing top-1 | top-3 = exact | assignment = exact | memory |"
    )
    print("   |---|---|---|---|---|---|---|---|---|---|")
    ex_top3 = [r.top_ids[i] for r in ex for i in range(len(r))]
    base = statistics.median(times["exact"])
    for name, method in methods.items():
        rs = results[name]
        if isinstance(method, tuple):
            top = [x for r in rs for x in r[0]]
            sim = np.concatenate([r[1] for r in rs])
            asg_eq = top3_eq = "–"
            mem = f"{(g.nbytes + len(g) * 32 * 2 * 4) / 2**20:.0f} MiB (+HNSW)"
        else:
            top = [r.top_ids[i][0] for r in rs for i in range(len(r))]
            sim = np.concatenate([r.top_similarity[:, 0] for r in rs])
            asg = [x for r in rs for x in r.assigned]
            asg_eq = f"{np.mean([x == y for x, y in zip(asg, ex_asg)]):.4f}"
            top3 = [r.top_ids[i] for r in rs for i in range(len(r))]
            top3_eq = f"{np.mean([x == y for x, y in zip(top3, ex_top3)]):.4f}"
            if method is None:
                mem = f"{g._templates.nbytes / 2**20:.0f} MiB"
            elif method == "bf16":
                mem = f"{(g._templates.nbytes + g._bf16.nbytes) / 2**20:.0f} MiB"
            else:
                mem = f"{(g.nbytes - g._bf16.nbytes) / 2**20:.0f} MiB"
        same = np.array([x == y for x, y in zip(top, ex_top)])
        diff = float(np.abs(sim - ex_sim)[same].max()) if same.any() else float("nan")
        med = statistics.median(times[name])
        print(
            f"   | {name} | {med:.1f} | {med / base:.2f} | {same[enrolled].mean():.4f} ({(~same[enrolled]).sum()} differ) | "
            f"{same[~enrolled].mean():.4f} ({(~same[~enrolled]).sum()} differ) | "
            f"{same[accepted].mean():.4f} ({(~same[accepted]).sum()} of {accepted.sum()} differ) | {diff:.1e} | {top3_eq} | {asg_eq} | {mem} |"
        )
    if pairs:
        print(f"   bf16: students scored exactly in stage 2, per face: mean {np.mean(pairs):.1f}, max {max(pairs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--strangers", type=int, default=4, help="strangers per snapshot")
    ap.add_argument("--k", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--faiss", action="store_true", help="also faiss HNSW as stage 1 (needs faiss-cpu)")
    ap.add_argument("--ef", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-length", type=int, default=10,
                    help="snapshots each method runs in a row before the next takes its turn (1 = interleave every snapshot)")
    a = ap.parse_args()
    for s in a.students:
        run(s, a)


if __name__ == "__main__":
    main()
