"""Gallery scoring, top-k, one-to-one assignment, model safety; plus a real-face roster."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from aas_core.vision.matching import Gallery

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage via insightface norm_crop

M = "arcface:test"


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _brute_scores(ids: list[str], emb: np.ndarray, q: np.ndarray) -> tuple[list[str], np.ndarray]:
    students = sorted(set(ids))
    emb, q = _unit(emb), _unit(q)
    out = np.zeros((len(q), len(students)))
    for j, s in enumerate(students):
        samples = emb[[i for i, x in enumerate(ids) if x == s]]
        mean = _unit(samples.mean(axis=0))
        for i in range(len(q)):
            out[i, j] = max(float(q[i] @ mean), float((samples @ q[i]).max()))
    return students, out


@pytest.mark.parametrize("counts", [[3, 3, 3, 3], [1, 4, 2, 3], [1, 1, 1, 12]], ids=["uniform", "ragged", "skewed"])
def test_scores_are_max_of_mean_and_samples(counts: list[int]) -> None:
    """All three layouts (padded uniform, padded ragged, reduceat fallback) agree with loops."""
    rng = np.random.default_rng(1)
    ids = [f"s{j}" for j, c in enumerate(counts) for _ in range(c)]
    perm = rng.permutation(len(ids))  # samples arrive in any order
    ids = [ids[i] for i in perm]
    emb = rng.standard_normal((len(ids), 16))
    q = rng.standard_normal((5, 16))
    g = Gallery(ids, emb, M)
    students, expected = _brute_scores(ids, emb, q)
    assert g.student_ids == students and len(g) == len(counts)
    np.testing.assert_allclose(g.scores(q, model_name=M), expected, atol=1e-5)


def test_top_k_sorted_and_limited_by_roster() -> None:
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((4, 8))
    g = Gallery(["a", "b", "c", "d"], emb, M)
    q = emb[[2]] + 0.01
    res = g.match(q, threshold=0.5, top_k=3, model_name=M)
    assert res.top_ids[0][0] == "c" and len(res.top_ids[0]) == 3
    assert np.all(np.diff(res.top_similarity[0]) <= 0)
    res = g.match(q, threshold=0.5, top_k=10, model_name=M)
    assert res.top_similarity.shape == (1, 4)


def test_one_to_one_assignment_never_gives_a_student_twice() -> None:
    # two faces both look most like "a"; the second is also fairly like "b"
    a, b, c = np.eye(3, dtype=np.float32)
    g = Gallery(["a", "b", "c"], np.stack([a, b, c]), M)
    q = np.stack([_unit(a + 0.1 * b), _unit(a + 0.6 * b)])
    res = g.match(q, threshold=0.3, model_name=M)
    assert res.top_ids[0][0] == res.top_ids[1][0] == "a"
    assert res.assigned == ["a", "b"]
    assert res.assigned_similarity[1] == pytest.approx(res.scores[1, 1])
    # without a second candidate above threshold the weaker face becomes unknown
    res = g.match(q, threshold=0.6, model_name=M)
    assert res.assigned == ["a", None] and np.isnan(res.assigned_similarity[1])


def test_assignment_is_optimal_and_unique_on_random_snapshots() -> None:
    """Brute force over all partial assignments on small random cases."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        s, m = int(rng.integers(2, 5)), int(rng.integers(1, 5))
        g = Gallery([f"s{i}" for i in range(s)], rng.standard_normal((s, 6)), M)
        q = rng.standard_normal((m, 6))
        thr = 0.2
        res = g.match(q, threshold=thr, model_name=M)
        got = [x for x in res.assigned if x is not None]
        assert len(got) == len(set(got))
        sc = res.scores
        best = 0.0
        for choice in itertools.product([None, *range(s)], repeat=m):  # each face: a student or unknown
            taken = [j for j in choice if j is not None]
            if len(taken) != len(set(taken)) or any(j is not None and sc[i, j] < thr for i, j in enumerate(choice)):
                continue
            best = max(best, sum(sc[i, j] for i, j in enumerate(choice) if j is not None))
        achieved = float(np.nansum(res.assigned_similarity))
        assert achieved == pytest.approx(best, abs=1e-5)
        assert all(v >= thr for v in res.assigned_similarity[~np.isnan(res.assigned_similarity)])


def test_threshold_produces_unknown() -> None:
    rng = np.random.default_rng(4)
    emb = rng.standard_normal((10, 32))
    g = Gallery([f"s{i // 2}" for i in range(10)], emb, M)
    stranger = rng.standard_normal((1, 32))
    res = g.match(stranger, threshold=0.9, model_name=M)
    assert res.assigned == [None] and res.recognised == []
    assert len(res.top_ids[0]) == 3  # candidates are still listed for review


def test_model_mismatch_and_bad_input_raise() -> None:
    g = Gallery(["a", "b"], np.eye(2, 4), "arcface:w600k_r50")
    with pytest.raises(ValueError, match="never mixes models"):
        g.match(np.eye(1, 4), threshold=0.5, model_name="arcface:mobilefacenet")
    with pytest.raises(ValueError, match=r"shape \(M, 4\)"):
        g.match(np.eye(1, 5), threshold=0.5, model_name="arcface:w600k_r50")
    with pytest.raises(ValueError, match="threshold"):
        g.match(np.eye(1, 4), threshold=1.5, model_name="arcface:w600k_r50")
    with pytest.raises(ValueError, match="NaN"):
        g.match(np.full((1, 4), np.nan), threshold=0.5, model_name="arcface:w600k_r50")
    with pytest.raises(ValueError, match="student ids"):
        Gallery(["a"], np.eye(2, 4), M)
    with pytest.raises(ValueError, match="model_name"):
        Gallery(["a"], np.eye(1, 4), "")


def test_empty_queries_and_empty_gallery() -> None:
    g = Gallery(["a"], np.eye(1, 4), M)
    res = g.match(np.zeros((0, 4)), threshold=0.5, model_name=M)
    assert res.assigned == [] and res.top_similarity.shape == (0, 1)
    empty = Gallery([], np.zeros((0, 4)), M)
    assert len(empty) == 0
    res = empty.match(np.eye(2, 4), threshold=0.5, model_name=M)
    assert res.assigned == [None, None] and res.top_ids == [[], []]


def test_real_roster_recognises_a_snapshot(arcface, faces) -> None:
    """Enroll 3 photos per person; the 4th photos of everyone form one 'snapshot'."""
    by_label: dict[str, list[np.ndarray]] = {}
    for f in faces:
        by_label.setdefault(f.label, []).append(arcface.embed(f.image, f.det)[0])
    labels = sorted(by_label)
    enroll_ids = [lab for lab in labels for _ in range(3)]
    enroll = np.stack([v for lab in labels for v in by_label[lab][:3]])
    g = Gallery(enroll_ids, enroll, arcface.name)
    snapshot = np.stack([by_label[lab][3] for lab in labels[1:]])  # labels[0] is absent
    res = g.match(snapshot, threshold=arcface.default_threshold, model_name=arcface.name)
    correct = sum(a == lab for a, lab in zip(res.assigned, labels[1:]))
    assert correct >= len(labels) - 2
    assert labels[0] not in res.recognised
