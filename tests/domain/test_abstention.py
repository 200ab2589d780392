"""Abstain instead of guessing (domain.abstention): "could not tell", never "not there", and the
students a person must look at."""

from __future__ import annotations

from aas_core.domain.abstention import Unclear, could_not_tell, decide_with_abstention
from aas_core.domain.attendance import RuleConfig, Status
from aas_core.domain.decision import Sighting, decide_session

SEAT_A = (100.0, 100.0, 130.0, 130.0)
ELSEWHERE = (700.0, 100.0, 730.0, 130.0)
ROSTER = ["a", "b", "c"]


def _poor(k: int, box=ELSEWHERE, cands=(("a", 0.30),)) -> Unclear:  # type: ignore[no-untyped-def]
    return Unclear(k, box, tuple(cands), "size 22 px, dark")


def test_a_poor_face_that_could_be_the_student_is_could_not_tell_not_absent() -> None:
    seen = [Sighting(0, "a", 0.6), Sighting(1, "a", 0.6)]
    before = decide_session(3, [0, 1, 2], seen, ROSTER, RuleConfig())
    assert before["a"].status == Status.LEFT_EARLY and before["a"].presence == [True, True, False]
    out = decide_with_abstention(3, [0, 1, 2], seen, ROSTER, RuleConfig(), unclear=[_poor(2)], loose_floor=0.25)
    assert out.students["a"].presence == [True, True, None] and out.students["a"].status == Status.ATTENDED
    assert out.needs_review == {"a": [("could not tell in snapshot 3: a face of poor quality (size 22 px, dark) "
                                       "could be this student (top match 0.30)")]}


def test_candidates_under_the_loose_floor_seen_students_and_unusable_snapshots_change_nothing() -> None:
    seen = [Sighting(0, "a", 0.6), Sighting(2, "b", 0.7)]
    unclear = [_poor(1, cands=(("a", 0.20),)),  # under the floor
               _poor(2, cands=(("b", 0.5),)),  # b is seen in snapshot 2 already
               _poor(1, cands=(("c", 0.5),))]  # snapshot 1 is not usable
    out = decide_with_abstention(3, [0, 2], seen, ROSTER, RuleConfig(), unclear=unclear, loose_floor=0.25)
    assert out.needs_review == {}
    assert {k: v for k, v in out.students.items()} == decide_session(3, [0, 2], seen, ROSTER, RuleConfig())


def test_no_loose_floor_means_candidates_by_seat_only() -> None:
    seats = {"a": [(0, SEAT_A)]}
    seen = [Sighting(0, "a", 0.6)]
    assert could_not_tell([0, 1], seen, [_poor(1, ELSEWHERE)], ROSTER, seats, None) == {}
    got = could_not_tell([0, 1], seen, [_poor(1, (102.0, 101.0, 131.0, 132.0), cands=())], ROSTER, seats, None)
    assert list(got) == ["a"] and "sits in this student's seat" in got["a"][1]


def test_a_seat_seen_only_in_the_same_snapshot_is_no_seat() -> None:
    # a's seat comes from snapshot 1 itself: the poor face next to it there says nothing about a
    assert could_not_tell([0, 1], [], [_poor(1, SEAT_A, cands=())], ROSTER, {"a": [(1, SEAT_A)]}, None) == {}


def test_could_not_tell_everywhere_is_stored_absent_and_flagged() -> None:
    unclear = [_poor(k) for k in range(3)]
    out = decide_with_abstention(3, [0, 1, 2], [], ROSTER, RuleConfig(), unclear=unclear, loose_floor=0.25)
    assert out.students["a"].presence == [None, None, None]
    assert out.students["a"].status == Status.ABSENT  # never present without a sighting
    assert out.needs_review["a"][-1] == "no snapshot could tell: stored absent until a person decides"
    assert len(out.needs_review["a"]) == 4 and set(out.needs_review) == {"a"}


def test_abstention_never_lifts_an_absent_status() -> None:
    # seen once of three: absent under min_present_fraction 0.5; skipping the two unclear
    # snapshots would leave 1 of 1 (attended). It stays absent, flagged.
    rules = RuleConfig(min_present_fraction=0.5)
    seen = [Sighting(0, "a", 0.6)]
    out = decide_with_abstention(3, [0, 1, 2], seen, ROSTER, rules, unclear=[_poor(1), _poor(2)], loose_floor=0.25)
    assert out.students["a"].status == Status.ABSENT
    assert "kept absent" in out.needs_review["a"][-1]


def test_no_student_is_ever_made_present_by_abstention_or_candidates() -> None:
    """Whatever unclear faces say, a student without a sighting is absent (no top-k candidate,
    however strong, is a sighting) and every sighting-free presence is False or None."""
    unclear = [Unclear(k, SEAT_A, (("b", 0.99), ("c", 0.9)), "size 20 px") for k in range(3)]
    for rules in (RuleConfig(), RuleConfig(min_present_fraction=0.5), RuleConfig(tolerate_gaps=0)):
        out = decide_with_abstention(3, [0, 1, 2], [Sighting(1, "a", 0.7)], ROSTER, rules, unclear=unclear,
                                     seats={"c": [(0, SEAT_A)]}, loose_floor=0.0)
        for st in ("b", "c"):
            assert out.students[st].status == Status.ABSENT and True not in out.students[st].presence


def test_a_status_resting_on_seat_continuity_alone_needs_review() -> None:
    seen = [Sighting(0, "a", 0.6), Sighting(1, "a", 0.6), Sighting(2, "a", 0.33, by_seat=True),
            Sighting(0, "b", 0.6), Sighting(1, "b", 0.31, by_seat=True), Sighting(2, "b", 0.6)]
    out = decide_with_abstention(3, [0, 1, 2], seen, ROSTER, RuleConfig())
    assert out.students["a"].status == Status.ATTENDED
    assert out.needs_review == {"a": [("named by seat continuity only in snapshot 3 (similarity 0.33, under the "
                                       "threshold): the status rests on it (left_early without it)")]}
    # b's seat sighting fills a gap the rules forgive anyway: attended with or without it, no review


def test_without_abstention_evidence_the_decision_is_decide_session() -> None:
    seen = [Sighting(0, "a", 0.6), Sighting(2, "b", 0.9), Sighting(1, "c", None)]
    for usable in ([0, 1, 2], [1], []):
        out = decide_with_abstention(3, usable, seen, ROSTER, RuleConfig())
        base = decide_session(3, usable, seen, ROSTER, RuleConfig())
        assert (out is None and base is None) or (out.students == base and out.needs_review == {})


def test_a_small_poor_box_inside_a_seat_is_in_that_seat() -> None:
    small = (110.0, 110.0, 120.0, 120.0)  # IoU with SEAT_A 0.11, centre inside it
    got = could_not_tell([0, 1], [], [_poor(1, small, cands=())], ROSTER, {"a": [(0, SEAT_A)]}, None)
    assert list(got) == ["a"]
    beside = (128.0, 110.0, 140.0, 120.0)  # centre outside, little overlap: the next seat
    assert could_not_tell([0, 1], [], [_poor(1, beside, cands=())], ROSTER, {"a": [(0, SEAT_A)]}, None) == {}


def test_a_vetoed_match_is_could_not_tell_for_its_student_whatever_the_floor() -> None:
    """A face named "a" but vetoed by a correction: "a" is not seen there, and not absent either:
    a person looks. Only the vetoed student is concerned, under the loose floor or not."""
    seen = [Sighting(0, "a", 0.6), Sighting(1, "a", 0.6)]
    vetoed = Unclear(2, ELSEWHERE, (("a", 0.12),), "looks like a corrected face", vetoed=True)
    out = decide_with_abstention(3, [0, 1, 2], seen, ROSTER, RuleConfig(), unclear=[vetoed], loose_floor=0.25)
    assert out.students["a"].presence == [True, True, None]
    assert out.needs_review == {"a": ["could not tell in snapshot 3: looks like a corrected face"]}
    # never a presence: a student only ever vetoed stays absent, flagged
    only = decide_with_abstention(3, [0, 1, 2], [], ROSTER, RuleConfig(), unclear=[vetoed], loose_floor=0.25)
    assert only.students["a"].status == Status.ABSENT and "a" in only.needs_review
