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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

_EPS = 1e-12


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
    """

    def __init__(self, student_ids: Sequence[str], embeddings: np.ndarray, model_name: str) -> None:
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
        self._templates = np.ascontiguousarray(np.vstack([means, body]), dtype=np.float32)

    def __len__(self) -> int:
        """Number of students."""
        return len(self.student_ids)

    def __repr__(self) -> str:
        return f"Gallery({len(self)} students, {self.n_samples} samples, d={self.dim}, model={self.model_name!r})"

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
        """(M, students) similarity ``max(cos(q, mean), max cos(q, samples))``, float32."""
        q = self._queries(queries, model_name)
        s = len(self.student_ids)
        if s == 0:
            return np.zeros((len(q), 0), np.float32)
        sims = q @ self._templates.T  # (M, rows): one GEMM over the whole roster
        if self._padded:
            return sims.reshape(len(q), 1 + self._slots, s).max(axis=1)
        best_sample = np.maximum.reduceat(sims[:, s:], self._offsets, axis=1)
        return np.maximum(sims[:, :s], best_sample)

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
        scores = self.scores(queries, model_name=model_name)
        m, s = scores.shape
        ids = np.asarray(self.student_ids, dtype=object)

        k = min(top_k, s)
        if k:
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
