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


# --- two-stage search (institution scale) ----------------------------------------------------


def _institution(
    rng: np.random.Generator, students: int, samples: int, dim: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Identity centres + noisy samples (sample-sample cos ~0.7, impostors ~0)."""
    centres = _unit(rng.standard_normal((students, dim)))
    emb = _unit(
        np.repeat(centres, samples, axis=0) + 0.6 * rng.standard_normal((students * samples, dim)) / np.sqrt(dim)
    )
    ids = [f"s{i:05d}" for i in range(students) for _ in range(samples)]
    return ids, emb, centres


def _far_mode_student(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """5 samples: 4 around one face, 1 (glasses off, a profile) far from their mean; and a query like that 5th one."""
    a, b = _unit(rng.standard_normal((2, dim)))
    samples = np.vstack([_unit(a + 0.3 * rng.standard_normal((4, dim)) / np.sqrt(dim)), b[None]])
    query = _unit(b + 0.2 * rng.standard_normal(dim) / np.sqrt(dim))[None]
    return samples, query


def test_two_stage_equals_brute_force_above_size_threshold() -> None:
    from aas_core.vision import matching

    rng = np.random.default_rng(11)
    students, dim = matching.TWO_STAGE_MIN_STUDENTS, 32
    ids, emb, centres = _institution(rng, students, 3, dim)
    far_samples, far_query = _far_mode_student(rng, dim)
    ids += ["zz_far"] * 5
    emb = np.vstack([emb, far_samples])
    g = Gallery(ids, emb, M, two_stage=True)  # opt-in (auto is bf16 or brute force: test_matching_bf16.py)
    exact = Gallery(ids, emb, M, two_stage=False)
    assert g.two_stage and not exact.two_stage and len(g) > matching.TWO_STAGE_MIN_STUDENTS
    far = g.student_ids.index("zz_far")
    mean = _unit(far_samples.mean(axis=0))
    assert float(far_query[0] @ mean) < 0.6 < float((far_samples @ far_query[0]).max())  # best sample far from mean
    assert far in g._mode_owner  # so that sample is a stage-1 row of its own

    enrolled = rng.choice(students, 39, replace=False)
    q = np.vstack([_unit(centres[enrolled] + 0.5 * rng.standard_normal((39, dim)) / np.sqrt(dim)), far_query])
    for thr in (0.3, 0.6, 0.95):
        got = g.match(q, threshold=thr, top_k=1, model_name=M)
        ref = exact.match(q, threshold=thr, top_k=1, model_name=M)
        assert got.top_ids == ref.top_ids
        np.testing.assert_allclose(got.top_similarity, ref.top_similarity, atol=1e-6)
        assert got.assigned == ref.assigned
        np.testing.assert_allclose(got.assigned_similarity, ref.assigned_similarity, atol=1e-6)
    assert got.top_ids[39] == ["zz_far"]
    assert got.top_similarity[39, 0] == pytest.approx(float((_unit(far_samples) @ far_query[0]).max()), abs=1e-5)
    assert got.top_ids[:39] == [[f"s{i:05d}"] for i in enrolled]

    # scores: exact for each query's best students, a lower bound (stage 1) elsewhere
    s2, s1 = g.scores(q, model_name=M), exact.scores(q, model_name=M)
    np.testing.assert_allclose(g.exact_scores(q, model_name=M), s1, atol=1e-6)
    assert np.all(s2 <= s1 + 1e-6)
    top = np.argsort(-s1, axis=1)[:, :1]
    np.testing.assert_allclose(np.take_along_axis(s2, top, axis=1), np.take_along_axis(s1, top, axis=1), atol=1e-6)


def test_two_stage_open_set_threshold_and_model_checks() -> None:
    rng = np.random.default_rng(12)
    ids, emb, centres = _institution(rng, 500, 3, 8)
    g = Gallery(ids, emb, "arcface:w600k_r50", two_stage=True, candidates=4)
    exact = Gallery(ids, emb, "arcface:w600k_r50", two_stage=False)
    assert g.two_stage and "two-stage K=4" in repr(g)
    stranger = _unit(rng.standard_normal((1, 8)))
    res = g.match(stranger, threshold=1.0, top_k=6, model_name="arcface:w600k_r50")
    assert res.assigned == [None] and np.isnan(res.assigned_similarity[0])
    assert len(res.top_ids[0]) == 6 and np.all(np.diff(res.top_similarity[0]) <= 0)  # top_k > candidates works
    ref = exact.scores(stranger, model_name="arcface:w600k_r50")[0]
    listed = [g.student_ids.index(x) for x in res.top_ids[0]]
    np.testing.assert_allclose(res.top_similarity[0], ref[listed], atol=1e-6)  # listed scores are exact
    with pytest.raises(ValueError, match="never mixes models"):
        g.match(stranger, threshold=0.5, model_name="arcface:mobilefacenet")
    with pytest.raises(ValueError, match=r"shape \(M, 8\)"):
        g.match(np.eye(1, 5), threshold=0.5, model_name="arcface:w600k_r50")
    with pytest.raises(ValueError, match="threshold"):
        g.match(stranger, threshold=1.5, model_name="arcface:w600k_r50")
    with pytest.raises(ValueError, match="candidates"):
        Gallery(ids, emb, M, candidates=0)
    # more faces than candidates: K grows to the number of faces, the assignment stays one-to-one
    q = _unit(centres[:10] + 0.05 * rng.standard_normal((10, 8)))
    got = g.match(q, threshold=0.5, model_name="arcface:w600k_r50")
    assert got.assigned == exact.match(q, threshold=0.5, model_name="arcface:w600k_r50").assigned
    assert got.assigned == [f"s{i:05d}" for i in range(10)]


def test_small_rosters_stay_brute_force_and_ragged_two_stage_is_exact_on_candidates() -> None:
    g = Gallery(["a", "b"], np.eye(2, 4), M)
    assert not g.two_stage and len(g._modes) == 0
    rng = np.random.default_rng(13)
    ids = [f"s{i}" for i in range(30)] + ["big"] * 60  # one student with many samples: reduceat layout
    emb = rng.standard_normal((90, 6))
    q = rng.standard_normal((3, 6))
    two = Gallery(ids, emb, M, two_stage=True, candidates=5)
    assert not two._padded
    s2, cand = two._score(_unit(q), 5)
    s1 = two.exact_scores(q, model_name=M)
    np.testing.assert_allclose(np.take_along_axis(s2, cand, axis=1), np.take_along_axis(s1, cand, axis=1), atol=1e-6)
    assert np.all(s2 <= s1 + 1e-6)


def test_veto_by_negatives_only_when_closer_to_a_corrected_face() -> None:
    from aas_core.vision.matching import veto_by_negatives

    rng = np.random.default_rng(7)
    a, b, stranger = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 64)).astype(np.float32))
    gallery = Gallery(["A", "B"], np.stack([a, b]), "m")
    # A face between A and the stranger, matched to A at a low threshold.
    face = a + 1.2 * stranger
    queries = np.stack([face / np.linalg.norm(face), b])
    match = gallery.match(queries, threshold=0.1, model_name="m")
    assert match.assigned == ["A", "B"]
    assert veto_by_negatives(match, queries, {}) == {}
    # The stranger's face was once corrected as "not A": this face is closer to it than to A.
    vetoed = veto_by_negatives(match, queries, {"A": stranger[None, :]})
    assert list(vetoed) == [0] and vetoed[0] > float(match.assigned_similarity[0])
    # A negative for A far from the face vetoes nothing; a negative for B leaves B's true match alone.
    far = -stranger
    assert veto_by_negatives(match, queries, {"A": far[None, :], "B": stranger[None, :]}) == {}


def test_too_close_to_call_flags_near_ties_unless_the_runner_up_is_placed_elsewhere() -> None:
    from aas_core.vision.matching import MIN_LEAD, too_close_to_call

    rng = np.random.default_rng(11)
    a, b, c = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 64)).astype(np.float32))
    gallery = Gallery(["A", "B", "C"], np.stack([a, b, c]), "m")

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    near_tie = unit(a + 0.98 * b)  # A by a hair over B
    clear = unit(a + 0.3 * b)  # A well ahead of B
    m = gallery.match(np.stack([near_tie, clear * 0 + c]), threshold=0.3, model_name="m")
    assert m.assigned == ["A", "C"]
    lead = float(m.assigned_similarity[0]) - float(near_tie @ b)
    assert too_close_to_call(m) == pytest.approx({0: lead}, abs=1e-5) and 0 <= lead < MIN_LEAD
    assert too_close_to_call(gallery.match(clear[None], threshold=0.3, model_name="m")) == {}
    # B is the other face's student in this snapshot: explained away there, so A stands
    m2 = gallery.match(np.stack([near_tie, b]), threshold=0.3, model_name="m")
    assert m2.assigned == ["A", "B"] and too_close_to_call(m2) == {}
    # unknown faces are never flagged
    assert too_close_to_call(gallery.match(near_tie[None], threshold=0.99, model_name="m")) == {}
