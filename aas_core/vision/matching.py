"""Open-set matching of face embeddings against a course roster (the gallery).

Scoring a query against a student
    Each student has several enrollment samples. The score is
    ``max(cos(query, mean), max_i cos(query, sample_i))`` where ``mean`` is the
    re-normalised mean of the student's samples:

    * the mean template averages out per-photo noise (lighting, blur, a slightly off
      alignment), which is what helps most for the usual frontal classroom face;
    * the best single sample covers students whose samples differ a lot (glasses on/off,
      beard, a profile shot) where the mean falls between the modes and matches none well.

    Taking the max of both keeps the better of the two views per student. The price is a
    slightly higher impostor score (a max over ``1 + n_samples`` values), so thresholds
    calibrated on single pairs are a little lax at roster level; the calibration script
    prints that roster-level false-accept rate too.

Assignment
    Within one snapshot a student is present at most once, so faces and students are
    matched one-to-one with the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``)
    maximising total similarity over the pairs that reach the threshold. A face with no
    such pair, or which loses its student to a better-matching face, is ``None`` ("unknown").

Everything is one matrix multiply over the whole roster plus vectorised reductions:
10,000 students x 5 samples against 40 faces takes ~5 ms with 128-d and ~16 ms with
512-d embeddings on a 2-core CPU (median, idle machine; ``benchmarks/bench_matching.py``).

Institution scale (bf16-bounded exact search)
    From ``LARGE_GALLERY_MIN_STUDENTS`` students on (a face searched across the whole
    institution rather than a roster), on a CPU with bf16 matmul hardware (AMX or
    AVX512-BF16, :func:`bf16_search_available`), :class:`Gallery` searches in two stages that
    give brute force's answer (:class:`_Bf16Search`):

    1. *stage 1* scores every row (every mean and every sample) with a bf16 copy of the
       gallery through torch/oneDNN: half the memory traffic of the fp32 GEMM, which is what
       brute force is bound by. Each value is within a proven distance of the fp32 score
       (rounding of the query and the gallery to bf16, fp32 accumulation, rounding of the
       output to bf16; the norms are measured), so each student's exact score lies in an
       interval around its stage-1 maximum;
    2. *stage 2* scores in fp32 every student whose interval reaches the query's cut
       ``min(k-th best, max(threshold, M-th best))`` (lower ends, M = faces in the snapshot):
       the exact top k and every pair an optimal one-to-one assignment can use are among
       them, so ``top_ids``, ``top_similarity`` and ``assigned`` equal brute force's (scores
       up to fp32 summation order, ~1e-7).

    torch is imported only for such galleries. Without bf16 hardware torch's bf16 matmul is
    emulated and slower than numpy's fp32, so the gallery stays brute force (exact, slower).
    ``benchmarks/matching_scale.py`` measures both, side by side.

Two-stage search (approximate, opt-in: ``search="two-stage"``)
    For comparison and for CPUs without bf16, two stages over one template per student:

    1. *stage 1* scores the queries against one row per student, the mean template, plus the
       few "mode" samples whose cosine to their own mean is under ``MODE_COS`` (glasses
       on/off, a profile shot: the samples the mean does not represent). The stage-1 score is
       ``max(cos(q, mean), cos(q, mode samples))``, a lower bound of the exact score;
    2. the best ``K = max(candidates, top_k, number of queries)`` students of each query by
       stage 1 are scored exactly (mean and every sample), and their exact score replaces the
       stage-1 one.

    ``top_ids``, ``top_similarity``, ``assigned`` and the scores of each query's candidates
    are then those of brute force unless a student outside a query's K candidates has an
    exact score above that query's K-th best exact candidate, i.e. one of its non-mode
    samples is much closer to the query than its mean is (cosine to the mean at least
    ``MODE_COS``, so the gap is bounded in angle but not zero). For enrolled faces the
    genuine student leads stage 1 by a wide margin; the queries that can differ are
    strangers, whose best impostor is a near-tie among thousands (and stays below the
    threshold either way). Outside a query's candidates ``scores`` holds the stage-1 lower
    bound, not the exact score.
"""

from __future__ import annotations

from collections.abc import Sequence
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

_EPS = 1e-12

#: Galleries with at least this many students use the large-gallery search (bounded bf16
#: where the CPU has bf16 hardware, else exact brute force; see the module doc); smaller ones
#: (any course roster) are scored by numpy brute force, which is cheap there and needs no torch.
LARGE_GALLERY_MIN_STUDENTS = 20_000
#: Former name of ``LARGE_GALLERY_MIN_STUDENTS`` (the two-stage search is now opt-in).
TWO_STAGE_MIN_STUDENTS = LARGE_GALLERY_MIN_STUDENTS
#: Students per stage-1 matmul of the bf16 search: its (M, (1 + slots) x block) bf16 scores
#: (~4 MB for 40 faces) stay in cache while they are reduced to one value per student, and
#: few, large calls keep the per-call and thread-barrier costs low (measured: 8192 beat 2048
#: by 1.3-3x on the shared 2-core machine).
BF16_BLOCK_STUDENTS = 8192  # a multiple of _SCAN_WIDTH (stage 1 takes group maxima per block)
#: Width of the column groups whose maxima steer the candidate scan of the bf16 search.
_SCAN_WIDTH = 512
#: Stage-1 candidates per query (at least ``top_k`` and the number of queries are kept).
TWO_STAGE_CANDIDATES = 64
#: A sample whose cosine to its own student's mean is below this is a "mode" of its own in
#: stage 1 (one extra template row), so a student the mean represents badly is still found.
MODE_COS = 0.5


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


@dataclass(frozen=True)
class MatchResult:
    """Matches of M query faces against a gallery.

    ``top_ids[i]`` / ``top_similarity[i]``: the best ``k = min(top_k, students)`` students
    for face ``i``, best first, regardless of the threshold (for review screens).
    ``assigned[i]``: the student given to face ``i`` by the one-to-one assignment, or None
    (unknown); ``assigned_similarity[i]`` its score (NaN when None).
    ``scores``: the full (M, students) score matrix, columns in ``student_ids`` order.
    """

    top_ids: list[list[str]]
    top_similarity: np.ndarray  # (M, k) float32
    assigned: list[str | None]
    assigned_similarity: np.ndarray  # (M,) float32, NaN where unassigned
    scores: np.ndarray  # (M, S) float32
    student_ids: list[str]
    threshold: float
    model_name: str

    def __len__(self) -> int:
        return len(self.assigned)

    @property
    def recognised(self) -> list[str]:
        """Students assigned to some face (each at most once)."""
        return [s for s in self.assigned if s is not None]


class Gallery:
    """Enrollment embeddings of a roster, preprocessed for fast open-set matching.

    Args:
        student_ids: one id per sample row (a student appears once per sample).
        embeddings: (N, d) sample embeddings; re-normalised here, so callers may pass
            raw model outputs.
        model_name: the embedder name (``Embedder.name``) that produced them. Queries
            must come from the same model: cosine similarities between different models
            are meaningless, so :meth:`match` refuses to mix them.
        search: ``"exact"`` (numpy brute force), ``"bf16"`` (exact results through a bounded
            bf16 stage 1, see :class:`_Bf16Search`) or ``"two-stage"`` (approximate, see the
            module doc). None (default): ``"bf16"`` from ``LARGE_GALLERY_MIN_STUDENTS``
            students on where the CPU has bf16 hardware (:func:`bf16_search_available`),
            otherwise ``"exact"``.
        two_stage: older switch: True means ``search="two-stage"``, False ``"exact"``.
        candidates: stage-1 candidates kept per query in two-stage mode.
    """

    def __init__(
        self,
        student_ids: Sequence[str],
        embeddings: np.ndarray,
        model_name: str,
        *,
        search: str | None = None,
        two_stage: bool | None = None,
        candidates: int = TWO_STAGE_CANDIDATES,
    ) -> None:
        emb = np.asarray(embeddings, dtype=np.float32)
        ids = np.asarray([str(s) for s in student_ids])
        if emb.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (N, d), got shape {emb.shape}")
        if len(ids) != len(emb):
            raise ValueError(f"{len(ids)} student ids for {len(emb)} embeddings")
        if not np.isfinite(emb).all():
            raise ValueError("embeddings contain NaN or inf")
        if not model_name:
            raise ValueError("model_name is required: matching never mixes models")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        self.model_name = model_name
        self.dim = int(emb.shape[1])
        self.n_samples = len(emb)

        uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        self.student_ids: list[str] = uniq.tolist()
        # object array of the same ids, built once: match() indexes it for every snapshot
        # (rebuilding it from the list took ~3 ms per call at 100k students)
        self._ids = np.asarray(self.student_ids, dtype=object)
        s = len(uniq)
        order = np.argsort(inverse, kind="stable")  # samples grouped by student
        samples = _normalise_rows(emb[order])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)  # start of each block
        means = _normalise_rows(np.add.reduceat(samples, offsets, axis=0)) if s else np.zeros((0, self.dim), np.float32)
        # Layout for one GEMM + a cheap per-student max. Slot-major "padded tensor":
        # rows [means (S); slot 0 of every student (S); slot 1 (S); ...], students short of
        # samples repeat their last one (a duplicate cannot change a max). The scores then
        # reshape to (M, 1 + slots, S) and reduce over the middle axis: elementwise maxima
        # of contiguous rows, ~50x faster than reduceat over tiny groups. When one student
        # has far more samples than the rest, padding would blow up memory: fall back to
        # sample-grouped rows and np.maximum.reduceat.
        slots = int(counts.max()) if s else 0
        self._padded = slots * s <= 1.5 * len(samples)
        if self._padded:
            take = offsets[None, :] + np.minimum(np.arange(slots)[:, None], counts[None, :] - 1)  # (slots, S)
            body = samples[take.ravel()]
        else:
            body = samples
        self._slots = slots
        self._offsets = offsets
        self._counts = counts.astype(np.intp)
        self._templates = np.ascontiguousarray(np.vstack([means, body]), dtype=np.float32)

        if search is None and two_stage is not None:
            search = "two-stage" if two_stage else "exact"
        if search is None:
            search = "bf16" if s >= LARGE_GALLERY_MIN_STUDENTS and bf16_search_available() else "exact"
        if search not in ("exact", "bf16", "two-stage"):
            raise ValueError(f"search must be 'exact', 'bf16' or 'two-stage', got {search!r}")
        self.search = search if s > 0 else "exact"
        self.candidates = int(candidates)
        self._bf16: _Bf16Search | None = None
        if self.search == "bf16":
            try:
                self._bf16 = _Bf16Search(self, BF16_BLOCK_STUDENTS)
            except (ImportError, RuntimeError) as exc:  # no torch, or its bf16 matmul broke the bound
                warnings.warn(
                    f"bf16 gallery search unavailable ({exc}); using brute force", RuntimeWarning, stacklevel=2
                )
                self.search = "exact"
        if self.search == "two-stage":
            # Stage-1 extra rows: samples far from their own mean (rows of self._templates).
            owner = np.repeat(np.arange(s), counts)
            own_cos = np.einsum("ij,ij->i", samples, means[owner])
            far = np.flatnonzero(own_cos < MODE_COS)  # grouped by owner (samples are)
            self._modes = np.ascontiguousarray(samples[far])
            self._mode_owner, starts = np.unique(owner[far], return_index=True)
            self._mode_starts = starts.astype(np.intp)
        else:
            self._modes = np.zeros((0, self.dim), np.float32)
            self._mode_owner = np.zeros(0, np.intp)
            self._mode_starts = np.zeros(0, np.intp)

    def __len__(self) -> int:
        """Number of students."""
        return len(self.student_ids)

    @property
    def two_stage(self) -> bool:
        return self.search == "two-stage"

    def __repr__(self) -> str:
        names = {"exact": "", "bf16": ", bf16-bounded exact", "two-stage": f", two-stage K={self.candidates}"}
        mode = names[self.search]
        return f"Gallery({len(self)} students, {self.n_samples} samples, d={self.dim}, model={self.model_name!r}{mode})"

    @property
    def nbytes(self) -> int:
        """Bytes held by the search structures (templates, stage-1 mode rows, bf16 copy)."""
        extra = self._bf16.nbytes if self._bf16 is not None else 0
        modes = self._modes.nbytes + self._mode_owner.nbytes + self._mode_starts.nbytes
        return int(self._templates.nbytes + modes + extra)

    def _queries(self, queries: np.ndarray, model_name: str) -> np.ndarray:
        if model_name != self.model_name:
            raise ValueError(
                f"queries come from model {model_name!r} but the gallery holds {self.model_name!r} embeddings; "
                "re-enroll or re-embed with one model (matching never mixes models)"
            )
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (M, {self.dim}), got {np.shape(queries)}")
        if not np.isfinite(q).all():
            raise ValueError("queries contain NaN or inf")
        return _normalise_rows(q)

    def scores(self, queries: np.ndarray, *, model_name: str) -> np.ndarray:
        """(M, students) similarity ``max(cos(q, mean), max cos(q, samples))``, float32.

        In two-stage mode only each query's candidates hold that exact score; the other
        entries hold the stage-1 lower bound (see the module doc). In bf16 mode each row's
        maximum, and every entry that could reach it, is exact; the others hold the bf16
        stage-1 value, below the row's maximum.
        """
        q = self._queries(queries, model_name)
        if self.search == "bf16" and len(q):
            return self._bf16.search(q, 1, None)[0]
        return self._score(q, self.candidates)[0]

    def exact_scores(self, queries: np.ndarray, *, model_name: str) -> np.ndarray:
        """Brute-force :meth:`scores` over every student, whatever the gallery size."""
        return self._exact_all(self._queries(queries, model_name))

    def _exact_all(self, q: np.ndarray) -> np.ndarray:
        s = len(self.student_ids)
        if s == 0:
            return np.zeros((len(q), 0), np.float32)
        sims = q @ self._templates.T  # (M, rows): one GEMM over the whole roster
        if self._padded:
            return sims.reshape(len(q), 1 + self._slots, s).max(axis=1)
        best_sample = np.maximum.reduceat(sims[:, s:], self._offsets, axis=1)
        return np.maximum(sims[:, :s], best_sample)

    def _score(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores (M, S) and, in two-stage mode, each query's exactly scored candidates (M, K)."""
        s = len(self.student_ids)
        k = min(max(k, len(q)), s)
        if self.search != "two-stage" or len(q) == 0 or k >= s:
            return self._exact_all(q), None
        # stage 1: one row per student (the mean) plus the mode samples
        stage1 = q @ self._templates[:s].T
        if len(self._modes):
            best_mode = np.maximum.reduceat(q @ self._modes.T, self._mode_starts, axis=1)
            stage1[:, self._mode_owner] = np.maximum(stage1[:, self._mode_owner], best_mode)
        cand = _top_k_unordered(stage1, k)  # (M, K) student indices
        # stage 2: exact scores of each query's candidates
        stage1[np.arange(len(q))[:, None], cand] = self._exact_pairs(q, cand)
        return stage1, cand

    def _exact_pairs(self, q: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Exact score of query i against students cand[i, :]; (M, K) float32."""
        s = len(self.student_ids)
        m, k = cand.shape
        out = np.empty((m, k), np.float32)
        means = self._templates[:s]
        if self._padded:
            body = self._templates[s:].reshape(self._slots, s, self.dim)
            for i in range(m):
                best = means[cand[i]] @ q[i]
                np.maximum(best, (body[:, cand[i]] @ q[i]).max(axis=0), out=best)
                out[i] = best
            return out
        body = self._templates[s:]
        for i in range(m):
            c = cand[i]
            cnt = self._counts[c]
            starts = np.repeat(self._offsets[c] - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())
            sims = body[starts] @ q[i]
            local = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            out[i] = np.maximum(means[c] @ q[i], np.maximum.reduceat(sims, local))
        return out

    def _sample_rows(self, students: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Rows of ``self._templates`` holding sample ``slot`` (< its count) of each student."""
        s = len(self.student_ids)
        students = np.asarray(students, np.intp)
        if self._padded:
            return s + np.asarray(slot, np.intp) * s + students
        return s + self._offsets[students] + np.asarray(slot, np.intp)

    def _exact_flat(self, q: np.ndarray, qi: np.ndarray, si: np.ndarray) -> np.ndarray:
        """Exact score of query qi[p] against student si[p], for each pair p; (P,) float32."""
        if not len(qi):
            return np.zeros(0, np.float32)
        cnt = self._counts[si]
        ends = np.cumsum(cnt)
        seg = np.repeat(np.arange(len(si)), cnt)
        slot = np.arange(ends[-1]) - np.repeat(ends - cnt, cnt)
        rows = self._sample_rows(si[seg], slot)
        sims = np.einsum("td,td->t", self._templates[rows], q[qi[seg]])
        best = np.maximum.reduceat(sims, ends - cnt)
        return np.maximum(np.einsum("pd,pd->p", self._templates[si], q[qi]), best).astype(np.float32)

    def _match_bf16(self, q: np.ndarray, threshold: float, top_k: int, model_name: str) -> MatchResult:
        """:meth:`match` in bf16 mode: top-k and assignment from each query's candidates, which
        hold the exact top k and every pair reaching the threshold (see :class:`_Bf16Search`)."""
        scores, cand = self._bf16.search(q, top_k, threshold)
        m, s = scores.shape
        ids = self._ids
        k = min(top_k, s)
        top_idx = np.empty((m, k), np.intp)
        top_sim = np.empty((m, k), np.float32)
        for i, c in enumerate(cand):
            v = scores[i, c]
            o = np.lexsort((c, -v))[:k]  # best first, ties by column
            top_idx[i], top_sim[i] = c[o], v[o]
        qi = np.repeat(np.arange(m), [len(c) for c in cand])
        si = np.concatenate(cand) if m else np.zeros(0, np.intp)
        ok = scores[qi, si] >= threshold
        rows, cols = np.unique(qi[ok]), np.unique(si[ok])
        allowed = np.zeros((len(rows), len(cols)), bool)
        allowed[np.searchsorted(rows, qi[ok]), np.searchsorted(cols, si[ok])] = True
        assigned, assigned_sim = _assign(scores, rows, cols, allowed, ids)
        return MatchResult(
            top_ids=[list(row) for row in ids[top_idx]],
            top_similarity=top_sim,
            assigned=assigned,
            assigned_similarity=assigned_sim,
            scores=scores,
            student_ids=self.student_ids,
            threshold=threshold,
            model_name=model_name,
        )

    def match(self, queries: np.ndarray, threshold: float, top_k: int = 3, *, model_name: str) -> MatchResult:
        """Top-k candidates and a one-to-one assignment for the faces of one snapshot.

        Args:
            queries: (M, d) embeddings of the faces of ONE snapshot (the assignment assumes
                a student appears at most once among them).
            threshold: open-set cosine threshold in [0, 1]; pairs below it are never assigned.
            top_k: candidates listed per face.
            model_name: name of the embedder that produced ``queries``.
        """
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [0, 1], got {threshold}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        q = self._queries(queries, model_name)
        if self.search == "bf16" and len(q):
            return self._match_bf16(q, float(threshold), top_k, model_name)
        scores, cand = self._score(q, max(self.candidates, top_k))
        m, s = scores.shape
        ids = self._ids

        k = min(top_k, s)
        if k and cand is not None:
            # Two-stage: every candidate's exact score is >= its stage-1 score >= the stage-1
            # score of every non-candidate, and K >= top_k, so the top k lie among candidates.
            sub = np.take_along_axis(scores, cand, axis=1)
            part = np.take_along_axis(cand, np.argpartition(-sub, k - 1, axis=1)[:, :k], axis=1)
            part_scores = np.take_along_axis(scores, part, axis=1)
            order = np.argsort(-part_scores, axis=1, kind="stable")
            top_idx = np.take_along_axis(part, order, axis=1)
            top_sim = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
        elif k:
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < s else np.broadcast_to(np.arange(s), (m, s))
            part_scores = np.take_along_axis(scores, part, axis=1)
            order = np.argsort(-part_scores, axis=1, kind="stable")
            top_idx = np.take_along_axis(part, order, axis=1)
            top_sim = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
        else:
            top_idx = np.zeros((m, 0), np.intp)
            top_sim = np.zeros((m, 0), np.float32)
        top_ids = [list(row) for row in ids[top_idx]] if m else []

        allowed = scores >= threshold
        rows = np.flatnonzero(allowed.any(axis=1))
        cols = np.flatnonzero(allowed.any(axis=0))  # only students someone could be
        assigned, assigned_sim = _assign(scores, rows, cols, allowed[np.ix_(rows, cols)], ids)
        return MatchResult(
            top_ids=top_ids,
            top_similarity=top_sim,
            assigned=assigned,
            assigned_similarity=assigned_sim,
            scores=scores,
            student_ids=self.student_ids,
            threshold=float(threshold),
            model_name=model_name,
        )


def _assign(scores: np.ndarray, rows: np.ndarray, cols: np.ndarray,
            allowed: np.ndarray, ids: np.ndarray) -> tuple[list[str | None], np.ndarray]:
    """One-to-one assignment over the sub-matrix ``rows`` x ``cols``; ``allowed`` is its mask."""
    m = len(scores)
    assigned: list[str | None] = [None] * m
    assigned_sim = np.full(m, np.nan, np.float32)
    if len(rows):
        weights = np.where(allowed, scores[np.ix_(rows, cols)], 0.0)  # 0 = leave unassigned
        r, c = linear_sum_assignment(weights, maximize=True)
        ok = allowed[r, c]
        for qi, si in zip(rows[r[ok]], cols[c[ok]]):
            assigned[qi] = str(ids[si])
            assigned_sim[qi] = scores[qi, si]
    return assigned, assigned_sim


def _top_k_unordered(x: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest entries of each row of x (M, S), in no order.

    Same result as ``np.argpartition(-x, k - 1, axis=1)[:, :k]`` (up to ties) without
    partitioning all S columns: the maxima of B = 4k column blocks give, per row, a value
    that at least k entries reach (the k-th largest block maximum), so only the entries
    above it are partitioned.
    """
    m, s = x.shape
    blocks = 4 * k
    width = s // blocks
    if width < 8:
        return np.argpartition(-x, k - 1, axis=1)[:, :k]
    block_max = x[:, : blocks * width].reshape(m, blocks, width).max(axis=2)
    cut = -np.partition(-block_max, k - 1, axis=1)[:, k - 1]  # k blocks have an entry >= cut
    out = np.empty((m, k), np.intp)
    for i in range(m):
        idx = np.flatnonzero(x[i] >= cut[i])  # >= k entries, usually a few times k
        vals = x[i, idx]
        out[i] = idx[np.argpartition(-vals, k - 1)[:k]] if len(idx) > k else idx
    return out


# --- bounded bf16 search (large galleries) ------------------------------------------------

_U_BF16 = 2.0**-8  # unit roundoff of bfloat16 (8-bit significand), round to nearest
_U_FP32 = 2.0**-24
_BF16_AVAILABLE: bool | None = None


def bf16_search_available() -> bool:
    """Whether this CPU runs bf16 matmuls in hardware (AMX or AVX512-BF16) under torch.

    Decided once per process from torch's own CPU checks (deterministic, unlike a timing
    probe). Without them torch still computes bf16 matmuls, correctly but by emulation and
    slower than numpy's fp32 brute force, so ``Gallery`` then keeps brute force. torch is
    imported here, lazily: rosters never pay its import.
    """
    global _BF16_AVAILABLE
    if _BF16_AVAILABLE is None:
        try:
            import torch

            cpu = torch.cpu
            _BF16_AVAILABLE = bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())
        except Exception:  # no torch, or a torch without these checks
            _BF16_AVAILABLE = False
    return _BF16_AVAILABLE


class _Bf16Search:
    """Exact search over every row of a large gallery, with a bf16 copy as stage 1.

    Stage 1 scores the query (rounded to bf16) against a bf16 copy of every row, the
    mean and every sample slot of every student, block by block (oneDNN packed weights, AMX
    where present), and keeps one value per student: ``U = max over its rows``. Every row's
    value is within a proven distance of the fp32 score brute force computes (see
    :meth:`_bounds`), so each student's exact score lies in ``[lo(U), hi(U)]``. Stage 2 scores
    in fp32 every student whose ``hi(U)`` reaches the query's cut
    ``min(threshold, lo(k-th best U))``: that set holds the exact top k and every pair that
    reaches the threshold, so top-k and the assignment are those of brute force.

    Samples beyond the common slot count (a student with many more samples than the rest)
    are scored in fp32 directly (their exact value trivially lies in its own interval).
    """

    def __init__(self, g: Gallery, block: int) -> None:
        import torch

        s, d = len(g.student_ids), g.dim
        if block <= 0 or block % _SCAN_WIDTH:
            raise ValueError(f"block must be a positive multiple of {_SCAN_WIDTH}, got {block}")
        self.s, self.d, self.block = s, d, int(block)
        counts = g._counts
        slots = g._slots if g._padded else max(1, min(g._slots, int(1.5 * g.n_samples / max(s, 1))))
        self.slots = slots
        self._g = g

        # overflow samples (slot >= slots): exact fp32 rows grouped by owner
        extra = np.maximum(counts - slots, 0)
        if extra.any():
            owners = np.flatnonzero(extra)
            n_extra = extra[owners]
            who = np.repeat(owners, n_extra)
            slot = slots + np.arange(n_extra.sum()) - np.repeat(np.cumsum(n_extra) - n_extra, n_extra)
            rows = g._sample_rows(who, slot)
            self.over_rows = np.ascontiguousarray(g._templates[rows])
            self.over_owner = owners
            self.over_starts = np.concatenate([[0], np.cumsum(extra[owners])[:-1]]).astype(np.intp)
        else:
            self.over_rows = np.zeros((0, d), np.float32)
            self.over_owner = np.zeros(0, np.intp)
            self.over_starts = np.zeros(0, np.intp)

        # stage-1 blocks: rows [means of the block; slot 0 of the block; ...], packed for oneDNN
        self.blocks: list[tuple[int, int, object]] = []
        g_norm = gt_norm = d_norm = 0.0
        self.packed = True
        for a in range(0, s, self.block):
            b = min(s, a + self.block)
            who = np.arange(a, b)
            idx = [who] + [g._sample_rows(who, np.minimum(r, counts[who] - 1)) for r in range(slots)]
            rows32 = g._templates[np.concatenate(idx)]
            w = torch.from_numpy(rows32).to(torch.bfloat16)
            # error bounds, in float64: max row norms of the fp32 and bf16 rows, and of their difference
            r64 = rows32.astype(np.float64)
            w64 = w.float().numpy().astype(np.float64)
            g_norm = max(g_norm, float(np.sqrt((r64 * r64).sum(axis=1)).max()))
            gt_norm = max(gt_norm, float(np.sqrt((w64 * w64).sum(axis=1)).max()))
            d_norm = max(d_norm, float(np.sqrt(((r64 - w64) ** 2).sum(axis=1)).max()))
            if self.packed:
                try:
                    w = torch.ops.mkldnn._reorder_linear_weight(w, 64)
                except Exception:  # no oneDNN bf16 here: plain matmul (slow, still correct)
                    self.packed = False
            self.blocks.append((a, b, w))
            if a == 0:
                first = rows32
        self.g_norm, self.gt_norm, self.d_norm = g_norm, gt_norm, d_norm
        self._self_check(first)
        self.nbytes = sum((b - a) * (1 + slots) * d * 2 for a, b, _ in self.blocks) + self.over_rows.nbytes

    def _self_check(self, rows32: np.ndarray) -> None:
        """Checks the bound on the first block (random faces and the block's own rows as queries).

        The bound assumes fp32 accumulation and round-to-nearest output, which oneDNN and
        torch's fallback both do; a library that did otherwise would fail here, and the
        gallery then falls back to brute force instead of returning wrong matches.
        """
        import torch

        rng = np.random.default_rng(0)
        q = _normalise_rows(np.vstack([rng.standard_normal((24, self.d)), rows32[: 16]]).astype(np.float32))
        qt = torch.from_numpy(q).to(torch.bfloat16)
        with torch.inference_mode():
            y = self._mm(qt, self.blocks[0][2]).float().numpy().astype(np.float64)
        ref = q.astype(np.float64) @ rows32.astype(np.float64).T
        e = self._bounds(q, qt)[:, None]
        if not np.all(np.abs(ref - y) <= _U_BF16 * np.abs(y) / (1 - _U_BF16) + e):
            raise RuntimeError("bf16 matmul error exceeds the proven bound (not fp32-accumulated?)")

    def _mm(self, qt, w):
        import torch

        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(qt, w, None, "none", [None], "")
        return qt @ w.T

    def _bounds(self, q: np.ndarray, qt) -> np.ndarray:
        """Per query E: |fp32 brute-force score - fp32 score of the bf16 rounded vectors| <= E.

        With q, g the fp32 vectors, q~, g~ their bf16 roundings, and gamma = d u / (1 - d u)
        (u = 2^-24): ``|q.g - q~.g~| <= |q - q~| |g| + |q~| |g - g~|`` (Cauchy-Schwarz); the
        bf16 x bf16 products are exact in fp32 and oneDNN/torch accumulate them in fp32, in any
        order: error <= gamma |q~| |g~|; brute force's own fp32 GEMM and stage 2's dot
        products are each within gamma |q| |g| of q.g. The norms are measured, in float64, at
        build (max over rows) and per query. A relative 1e-6 + 1e-7 absolute margin covers the
        float64 evaluation and flushed denormal products (< d 2^-126).
        """
        qf = qt.float().numpy().astype(np.float64)
        q64 = q.astype(np.float64)
        dq = np.sqrt(((q64 - qf) ** 2).sum(axis=1))
        nqt = np.sqrt((qf * qf).sum(axis=1))
        nq = np.sqrt((q64 * q64).sum(axis=1))
        gamma = self.d * _U_FP32 / (1 - self.d * _U_FP32)
        e = dq * self.g_norm + nqt * self.d_norm + gamma * nqt * self.gt_norm + 2 * gamma * nq * self.g_norm
        return e * (1 + 1e-6) + 1e-7

    @staticmethod
    def _hi(u: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Upper bound of the exact score of a student whose stage-1 (bf16 output) value is u.

        The bf16 output is the fp32 accumulation y rounded to nearest: |y - u| <= 2^-8 |y|,
        hence <= 2^-8 |u| / (1 - 2^-8); plus E. Increasing in u.
        """
        return u + _U_BF16 * np.abs(u) / (1 - _U_BF16) + e

    @staticmethod
    def _lo(u: np.ndarray, e: np.ndarray) -> np.ndarray:
        return u - _U_BF16 * np.abs(u) / (1 - _U_BF16) - e

    @staticmethod
    def _hi_inverse(cut: np.ndarray, e: np.ndarray) -> np.ndarray:
        """A u at or below the smallest u with _hi(u, e) >= cut (per query): the candidate test
        then runs on raw stage-1 values."""
        c = cut - e
        # _hi(u) = u / (1 - v) + e for u >= 0 and u (1 - 2v) / (1 - v) + e for u < 0 (v = 2^-8)
        t = np.where(c >= 0, c * (1 - _U_BF16), c * (1 - _U_BF16) / (1 - 2 * _U_BF16))
        return t - 1e-12 * (1 + np.abs(t))  # float64 rounding in this formula never drops a student

    def _threshold(self, cut: np.ndarray, e: np.ndarray) -> np.ndarray:
        """float32 t per query such that every stage-1 value u with _hi(u) >= cut has u >= t."""
        t64 = self._hi_inverse(cut, e)
        t = t64.astype(np.float32)
        return np.where(t > t64, np.nextafter(t, np.float32(-np.inf)), t)  # the cast must not raise it

    def stage1(self, q: np.ndarray):
        """Stage-1 value of every student, U (M, S) float32 torch tensor, and per-query E."""
        u, e, _ = self._stage1(q)
        return u, e

    def _stage1(self, q: np.ndarray):
        """:meth:`stage1` plus the maximum of U over each group of ``_SCAN_WIDTH`` students
        (M, groups) float32, taken block by block while the block is still in cache (a separate
        pass over the whole (M, S) matrix cost ~3 ms at 100k students)."""
        import torch

        m = len(q)
        qt = torch.from_numpy(np.ascontiguousarray(q)).to(torch.bfloat16)
        u = torch.empty((m, self.s), dtype=torch.float32)
        width = _SCAN_WIDTH
        groups = -(-self.s // width)
        bmax = torch.empty((m, groups), dtype=torch.float32)
        r = 1 + self.slots
        with torch.inference_mode():
            for a, b, w in self.blocks:
                y = self._mm(qt, w)  # (M, r * (b - a)) bf16, rows [means; slot 0; ...]
                ub = torch.amax(y.view(m, r, b - a), dim=1)
                u[:, a:b] = ub
                # blocks start at multiples of the group width (BF16_BLOCK_STUDENTS is one)
                full = (b - a) // width
                g0 = a // width
                if full:
                    bmax[:, g0 : g0 + full] = ub[:, : full * width].reshape(m, full, width).amax(dim=2)
                if full * width < b - a:
                    bmax[:, g0 + full] = ub[:, full * width :].amax(dim=1)
        un, bn = u.numpy(), bmax.numpy()
        if len(self.over_rows):  # exact fp32 scores of overflow samples
            best = np.maximum.reduceat(q @ self.over_rows.T, self.over_starts, axis=1)
            np.maximum(un[:, self.over_owner], best, out=best)
            un[:, self.over_owner] = best
            for j in np.unique(self.over_owner // width):
                bn[:, j] = un[:, j * width : (j + 1) * width].max(axis=1)
        return u, self._bounds(q, qt), bn

    def search(self, q: np.ndarray, k: int, threshold: float | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Scores (M, S) and each query's candidates (student indices, exactly scored).

        Candidates of query i: every student whose exact score can reach
        ``min(k-th best, max(threshold, M-th best))`` (M = number of queries; without a
        threshold just the k-th best). That holds its exact top k and every pair that an
        optimal one-to-one assignment can use: a face given a student outside its own top M
        could swap to one of those M, at most M - 1 of which the other faces hold, and gain.
        ``scores`` holds the exact fp32 score for every candidate and the stage-1 value
        elsewhere (below the k-th best exact score; below the threshold or the M-th best).
        """
        m, s = len(q), self.s
        # bmax: maxima of groups of _SCAN_WIDTH students: the k largest are k distinct students
        # reaching that value, so the k-th of them bounds the k-th best student from below
        # without a top-k over all S; they also steer the scan below
        u, e, bmax = self._stage1(q)
        un = u.numpy()
        k = min(k, s)
        mk = min(m, s)
        width = _SCAN_WIDTH
        nb = bmax.shape[1]
        if nb >= k:
            cut = self._lo(-np.partition(-bmax, k - 1, axis=1)[:, k - 1].astype(np.float64), e)
        else:  # fewer groups than k (a small gallery): every student is a first candidate
            cut = np.full(m, -np.inf)
        if threshold is not None:
            cut = np.minimum(cut, float(threshold))
        t = self._threshold(cut, e)
        # first candidates: scan only the (query, group) pairs whose maximum reaches t
        per_q: list[list[np.ndarray]] = [[] for _ in range(m)]
        for i, j in zip(*np.nonzero(bmax >= t[:, None])):
            a = j * width
            per_q[i].append(np.flatnonzero(un[i, a : a + width] >= t[i]) + a)
        # refine each query's cut with its true k-th (and M-th) best stage-1 value: the first
        # set holds every student at or above t, hence those order statistics
        cand: list[np.ndarray] = []
        for i in range(m):
            c = np.concatenate(per_q[i]) if per_q[i] else np.zeros(0, np.intp)
            v = un[i, c]
            if len(v) >= k:
                ck = self._lo(float(-np.partition(-v, k - 1)[k - 1]), e[i])
                if threshold is not None:
                    cm = self._lo(float(-np.partition(-v, mk - 1)[mk - 1]), e[i]) if len(v) >= mk else -np.inf
                    ck = min(ck, max(float(threshold), cm))
                c = c[v >= self._threshold(np.array([ck]), e[i : i + 1])[0]]
            cand.append(c)
        qi = np.repeat(np.arange(m), [len(c) for c in cand])
        si = np.concatenate(cand) if m else np.zeros(0, np.intp)
        self.last_query_of_pair = qi  # for benchmarks/matching_scale.py (stage-2 size)
        exact = self._g._exact_flat(q, qi, si)
        un[qi, si] = exact
        return un, cand


#: Least lead of a named face's student over the best other candidate for it (cosine). Under it
#: the face is "too close to call": the hard benchmark's wrong names with the int8 embedder led
#: by 0.013 and 0.034, while 1 of 1,478 right names of the fp32 product led by less than 0.04
#: (docs/EVALUATION.md, "int8 in the product").
MIN_LEAD = 0.04


def too_close_to_call(match: MatchResult, min_lead: float = MIN_LEAD) -> dict[int, float]:
    """Faces whose assigned student leads the runner-up by less than ``min_lead``.

    The runner-up is the best other candidate in the face's top list that is not assigned to
    another face of the same snapshot (a student the one-to-one assignment placed elsewhere is
    explained away there). Returns {face index: lead}. Pure; the session service stores such
    faces unknown and lets both students be "could not tell" for the snapshot, so a person
    decides instead of the matcher picking one of two near-equal students.
    """
    out: dict[int, float] = {}
    placed = {x for x in match.assigned if x is not None}  # one face each: the assignment is one-to-one
    for i, sid in enumerate(match.assigned):
        if sid is None:
            continue
        rivals = [float(v) for t, v in zip(match.top_ids[i], match.top_similarity[i])
                  if t is not None and t not in placed]
        if rivals:
            lead = float(match.assigned_similarity[i]) - max(rivals)
            if lead < min_lead:
                out[i] = lead
    return out


def veto_by_negatives(match: MatchResult, embeddings: np.ndarray,
                      negatives: dict[str, np.ndarray]) -> dict[int, float]:
    """Faces whose assigned student an instructor has corrected away from a closer face.

    ``negatives``: student id -> (k, d) embeddings of faces an instructor said were *not* that
    student (``db.models.FaceCorrection``). Face ``i`` assigned to X is vetoed when its best
    cosine to X's negatives exceeds its score for X (``assigned_similarity``, X's enrollment
    samples and mean): it looks more like a face known not to be X than like X. Returns
    {face index: that negative similarity}. Pure; the caller decides what a veto does (the
    session service makes the face unknown and X "could not tell" for that snapshot, so a person
    looks instead of the matcher guessing again).
    """
    out: dict[int, float] = {}
    if not negatives or not len(match):
        return out
    q = _normalise_rows(np.asarray(embeddings, dtype=np.float32))
    for i, sid in enumerate(match.assigned):
        neg = negatives.get(sid) if sid is not None else None
        if neg is None or not len(neg):
            continue
        best = float(np.max(_normalise_rows(np.asarray(neg, dtype=np.float32)) @ q[i]))
        if best > float(match.assigned_similarity[i]):
            out[i] = best
    return out
