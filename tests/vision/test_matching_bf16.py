"""The bf16-bounded search (``Gallery(search="bf16")``) returns brute force's MatchResult.

Stage 1 runs in bf16 (oneDNN/AMX where present, torch's own kernels elsewhere), so these
tests hold on any CPU torch runs on; only the auto choice depends on the hardware.
"""

from __future__ import annotations

import numpy as np
import pytest

from aas_core.vision import matching
from aas_core.vision.matching import Gallery, MatchResult

M = "arcface:test"


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several stage-1 blocks (and scan groups) even on these small galleries."""
    monkeypatch.setattr(matching, "BF16_BLOCK_STUDENTS", 2048)
    monkeypatch.setattr(matching, "_SCAN_WIDTH", 256)


def _pair(ids: list[str], emb: np.ndarray) -> tuple[Gallery, Gallery]:
    fast = Gallery(ids, emb, M, search="bf16")
    exact = Gallery(ids, emb, M, search="exact")
    assert fast.search == "bf16" and exact.search == "exact"
    return fast, exact


TIE = 1e-6  # fp32 summation order: stage 2 and brute force's GEMM add the d products differently (a few ulps)


def _same(got: MatchResult, ref: MatchResult) -> None:
    """Same decisions as brute force. Where two students' fp32 scores tie within TIE, either
    order is brute force's up to summation order, so a swap is allowed only there."""
    s = ref.scores
    col = {x: j for j, x in enumerate(ref.student_ids)}
    np.testing.assert_allclose(got.top_similarity, ref.top_similarity, atol=TIE)
    for i, (a, b) in enumerate(zip(got.top_ids, ref.top_ids)):
        assert len(a) == len(b) == len(set(a))
        for x, y in zip(a, b):
            assert x == y or abs(s[i, col[x]] - s[i, col[y]]) <= TIE, (i, a, b)
        # every listed score is the exact one, and no other entry of scores beats the k-th
        cols = [col[x] for x in a]
        np.testing.assert_allclose(got.scores[i, cols], s[i, cols], atol=TIE)
        assert np.all(np.delete(got.scores[i], cols) <= got.top_similarity[i, -1] + TIE)
    np.testing.assert_allclose(got.assigned_similarity, ref.assigned_similarity, atol=TIE)
    for i, (x, y) in enumerate(zip(got.assigned, ref.assigned)):
        assert x == y or (x is not None and y is not None and abs(s[i, col[x]] - s[i, col[y]]) <= TIE), (i, x, y)
    swaps = sum(x != y for x, y in zip(got.top_ids, ref.top_ids))
    assert sum(x != y for x, y in zip(got.assigned, ref.assigned)) <= swaps  # only where ranks tie


def _institution(rng: np.random.Generator, students: int, samples: int, dim: int, spread: float = 0.6):
    centres = _unit(rng.standard_normal((students, dim)))
    noise = spread * rng.standard_normal((students * samples, dim)) / np.sqrt(dim)
    emb = _unit(np.repeat(centres, samples, axis=0) + noise)
    ids = [f"s{i:05d}" for i in range(students) for _ in range(samples)]
    return ids, emb, centres


def test_bf16_equals_brute_force_on_random_snapshots() -> None:
    """~3,000 queries (enrolled faces at several noise levels and strangers) over 3 blocks."""
    rng = np.random.default_rng(21)
    students, dim = 5000, 48
    ids, emb, centres = _institution(rng, students, 4, dim)
    fast, exact = _pair(ids, emb)
    assert len(fast._bf16.blocks) == 3  # BF16_BLOCK_STUDENTS = 2048: blocks of 2048, 2048, 904
    for noise in (0.3, 0.8, 1.5, None):  # None: strangers
        for _ in range(15):
            if noise is None:
                q = _unit(rng.standard_normal((40, dim)))
            else:
                who = rng.choice(students, 40, replace=False)
                q = _unit(centres[who] + noise * rng.standard_normal((40, dim)) / np.sqrt(dim))
            thr = float(rng.choice([0.0, 0.3, 0.42, 0.6]))
            top_k = int(rng.integers(1, 6))
            _same(fast.match(q, thr, top_k, model_name=M), exact.match(q, thr, top_k, model_name=M))
    q = _unit(rng.standard_normal((7, dim)))
    got, ref = fast.scores(q, model_name=M), exact.scores(q, model_name=M)
    np.testing.assert_allclose(got.max(axis=1), ref.max(axis=1), atol=1e-6)  # each row's best is exact
    assert np.all(got.argmax(axis=1) == ref.argmax(axis=1))


def test_bf16_near_ties_below_bf16_resolution_are_resolved_exactly() -> None:
    """Adversarial: many students within 1e-5 of each other (bf16 sees them all as equal),
    their best row sometimes the mean and sometimes a sample, and pairs within 1e-5 of the
    threshold: ranking and assignment must still be brute force's."""
    rng = np.random.default_rng(22)
    dim = 64
    ids, emb, _ = _institution(rng, 4200, 3, dim)
    q = _unit(rng.standard_normal((6, dim)))
    extra_ids, extra = [], []
    for i in range(6):  # 200 students per face at cosine ~0.95 +- 1e-5
        base = _unit(0.95 * q[i] + np.sqrt(1 - 0.95**2) * _unit(rng.standard_normal(dim)))
        for j in range(200):
            tweak = _unit(base + 3e-5 * rng.standard_normal((3, dim)))
            extra.append(tweak)
            extra_ids += [f"t{i}_{j:03d}"] * 3
    # pairs straddling the threshold 0.5 by ~1e-5: a face whose only match sits on it
    thr = 0.5
    q_edge = _unit(rng.standard_normal((4, dim)))
    for i in range(4):
        for j, delta in enumerate((-2e-5, -5e-6, 5e-6, 2e-5)):
            c = thr + delta
            orth = _unit(rng.standard_normal(dim))
            orth = _unit(orth - (orth @ q_edge[i]) * q_edge[i])
            v = c * q_edge[i] + np.sqrt(1 - c * c) * orth
            extra.append(np.repeat(v[None], 3, axis=0))
            extra_ids += [f"e{i}_{j}"] * 3
    ids = ids + extra_ids
    emb = np.vstack([emb, *extra])
    perm = rng.permutation(len(ids))  # enrollment order is arbitrary
    fast, exact = _pair([ids[p] for p in perm], emb[perm])
    queries = np.vstack([q, q_edge])
    for top_k in (1, 3, 10):
        for t in (thr, 0.9, 0.95):
            _same(fast.match(queries, t, top_k, model_name=M), exact.match(queries, t, top_k, model_name=M))
    res = fast.match(queries, thr, 3, model_name=M)
    assert all(row[0].startswith(f"t{i}_") for i, row in enumerate(res.top_ids[:6]))


def test_bf16_ragged_gallery_with_overflow_samples() -> None:
    """One student with 40 samples: the padded layout is off, the extra samples are scored in fp32."""
    rng = np.random.default_rng(23)
    dim = 32
    ids, emb, centres = _institution(rng, 2500, 2, dim)
    ids += ["big"] * 40
    big_centre = _unit(rng.standard_normal(dim))
    emb = np.vstack([emb, _unit(big_centre + rng.standard_normal((40, dim)) / np.sqrt(dim))])
    fast, exact = _pair(ids, emb)
    assert not fast._padded and len(fast._bf16.over_rows) > 0
    q = np.vstack([_unit(centres[:30] + 0.5 * rng.standard_normal((30, dim)) / np.sqrt(dim)),
                   emb[-5:] + 0.01, _unit(rng.standard_normal((5, dim)))])
    for thr in (0.3, 0.7):
        _same(fast.match(q, thr, 3, model_name=M), exact.match(q, thr, 3, model_name=M))
    assert fast.match(q, 0.3, 1, model_name=M).top_ids[30:35] == [["big"]] * 5


def test_bf16_error_bound_holds_for_adversarial_vectors() -> None:
    """|brute-force fp32 score - bf16 stage-1 value| never exceeds the proven bound, also for
    spiky vectors (one large component) and components spanning many binades."""
    import torch

    rng = np.random.default_rng(24)
    dim = 128
    spiky = np.zeros((50, dim), np.float32)
    spiky[np.arange(50), rng.integers(0, dim, 50)] = 1.0
    spiky += 1e-3 * rng.standard_normal((50, dim)).astype(np.float32)
    wide = rng.standard_normal((50, dim)) * 2.0 ** rng.integers(-20, 0, (50, dim))  # many binades
    emb = np.vstack([spiky, wide.astype(np.float32), rng.standard_normal((300, dim)).astype(np.float32)])
    ids = [f"s{i:03d}" for i in range(len(emb))]
    g = Gallery(ids, emb, M, search="bf16")
    q = g._queries(np.vstack([emb[:60], rng.standard_normal((20, dim))]), M)
    u, e = g._bf16.stage1(q)
    ref = q.astype(np.float64) @ g._templates.astype(np.float64).T
    s = len(g)
    ref = np.maximum(ref[:, :s], ref[:, s:].reshape(len(q), -1, s).max(axis=1))  # mean and samples
    un = u.numpy().astype(np.float64)
    assert np.all(ref <= g._bf16._hi(un, e[:, None]))
    assert np.all(ref >= g._bf16._lo(un, e[:, None]))
    slack = g._bf16._hi(un, e[:, None]) - un
    assert slack.max() < 0.02  # and the bound is tight enough to be useful
    del torch


def test_auto_search_by_size_and_hardware_and_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(25)
    small = Gallery(["a", "b"], np.eye(2, 4), M)
    assert small.search == "exact" and small._bf16 is None
    ids, emb, _ = _institution(rng, matching.LARGE_GALLERY_MIN_STUDENTS, 1, 8)
    big = Gallery(ids, emb, M)
    assert big.search == ("bf16" if matching.bf16_search_available() else "exact")
    assert Gallery(ids, emb, M, two_stage=True).search == "two-stage"

    # a bf16 matmul that broke the bound would make the gallery fall back to brute force
    def broken(self, rows32):
        raise RuntimeError("bf16 matmul error exceeds the proven bound")

    monkeypatch.setattr(matching._Bf16Search, "_self_check", broken)
    with pytest.warns(RuntimeWarning, match="using brute force"):
        g = Gallery(ids[:300], emb[:300], M, search="bf16")
    assert g.search == "exact"
    with pytest.raises(ValueError, match="search must be"):
        Gallery(ids[:30], emb[:30], M, search="faiss")
