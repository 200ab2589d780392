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

Institution scale (two-stage search)
    From ``TWO_STAGE_MIN_STUDENTS`` students on (a face searched across the whole
    institution rather than a roster), scoring every sample costs ``1 + n_samples`` GEMM rows
    per student. :class:`Gallery` then searches in two stages:

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
    threshold either way). ``benchmarks/matching_scale.py`` measures the agreement.
    Outside a query's candidates ``scores`` holds the stage-1 lower bound, not the exact score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

_EPS = 1e-12

#: Galleries with at least this many students use the two-stage search (see module doc);
#: smaller ones (any course roster) are scored exactly by brute force. Chosen from
#: ``benchmarks/matching_scale.py``: two-stage pays off well before, brute force stays the
#: reference where it is cheap.
TWO_STAGE_MIN_STUDENTS = 20_000
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
        two_stage: force (True) or forbid (False) the two-stage search; None (default)
            uses it from ``TWO_STAGE_MIN_STUDENTS`` students on.
        candidates: stage-1 candidates kept per query in two-stage mode.
    """

    def __init__(
        self,
        student_ids: Sequence[str],
        embeddings: np.ndarray,
        model_name: str,
        *,
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

        self.two_stage = bool(s >= TWO_STAGE_MIN_STUDENTS if two_stage is None else two_stage) and s > 0
        self.candidates = int(candidates)
        if self.two_stage:
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

    def __repr__(self) -> str:
        mode = f", two-stage K={self.candidates}" if self.two_stage else ""
        return f"Gallery({len(self)} students, {self.n_samples} samples, d={self.dim}, model={self.model_name!r}{mode})"

    @property
    def nbytes(self) -> int:
        """Bytes held by the search structures (templates, and stage-1 mode rows)."""
        return int(self._templates.nbytes + self._modes.nbytes + self._mode_owner.nbytes + self._mode_starts.nbytes)

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
        entries hold the stage-1 lower bound (see the module doc).
        """
        q = self._queries(queries, model_name)
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
        if not self.two_stage or len(q) == 0 or k >= s:
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
        scores, cand = self._score(q, max(self.candidates, top_k))
        m, s = scores.shape
        ids = np.asarray(self.student_ids, dtype=object)

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

        assigned: list[str | None] = [None] * m
        assigned_sim = np.full(m, np.nan, np.float32)
        allowed = scores >= threshold
        rows = np.flatnonzero(allowed.any(axis=1))
        if len(rows):
            cols = np.flatnonzero(allowed.any(axis=0))  # only students someone could be
            sub_ok = allowed[np.ix_(rows, cols)]
            weights = np.where(sub_ok, scores[np.ix_(rows, cols)], 0.0)  # 0 = leave unassigned
            r, c = linear_sum_assignment(weights, maximize=True)
            ok = sub_ok[r, c]
            for qi, si in zip(rows[r[ok]], cols[c[ok]]):
                assigned[qi] = str(ids[si])
                assigned_sim[qi] = scores[qi, si]
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
