"""The attendance decision as a pure step (domain.decision.decide_session)."""

from __future__ import annotations

from aas_core.domain.attendance import RuleConfig, Status
from aas_core.domain.decision import Sighting, decide_session


def test_statuses_presence_and_best_similarity() -> None:
    seen = [Sighting(0, "a", 0.6), Sighting(1, "a", 0.7), Sighting(2, "a", 0.5), Sighting(0, "a", 0.9),
            Sighting(1, "b", 0.6), Sighting(2, "b", 0.6), Sighting(0, "c", 0.6), Sighting(2, "x", 0.9)]
    out = decide_session(3, [0, 1, 2], seen, ["a", "b", "c", "d"], RuleConfig())
    assert {k: v.status for k, v in out.items()} == {"a": Status.ATTENDED, "b": Status.LATE, "c": Status.LEFT_EARLY,
                                                     "d": Status.ABSENT}
    assert out["a"].presence == [True, True, True] and out["a"].best_similarity == 0.9
    assert out["d"].best_similarity is None and "x" not in out  # only the roster is decided


def test_missing_snapshots_are_skipped_and_no_data_is_none() -> None:
    out = decide_session(3, [0, 2], [Sighting(0, "a", 0.6), Sighting(1, "a", 0.6)], ["a"], RuleConfig())
    assert out["a"].presence == [True, None, False] and out["a"].status == Status.LEFT_EARLY
    assert decide_session(3, [], [Sighting(0, "a", 0.6)], ["a"], RuleConfig()) is None


def test_min_confidence_turns_weak_sightings_into_no_evidence() -> None:
    seen = [Sighting(0, "a", 0.45), Sighting(1, "a", 0.8), Sighting(2, "a", 0.8)]
    assert decide_session(3, [0, 1, 2], seen, ["a"], RuleConfig())["a"].status == Status.ATTENDED
    strict = RuleConfig(min_confidence=0.5)
    assert decide_session(3, [0, 1, 2], seen, ["a"], strict)["a"].status == Status.ATTENDED  # skipped, not absent
    late = [Sighting(0, "a", 0.45), Sighting(2, "a", 0.8)]
    assert decide_session(3, [0, 1, 2], late, ["a"], strict)["a"].status == Status.LATE  # 0,1 -> None,False
    # a face an instructor named by hand (similarity None) is never discounted
    manual = [Sighting(0, "a", None), Sighting(2, "a", 0.96)]
    assert decide_session(3, [0, 1, 2], manual, ["a"], RuleConfig(min_confidence=0.95))["a"].status == Status.ATTENDED
