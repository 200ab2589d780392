"""Attendance rules: every presence pattern for N = 1..5, hand-written tables, properties."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from pydantic import ValidationError

from aas_core.domain.attendance import RuleConfig, Status, decide, decide_all, usable_presence

A, L, E, X = Status.ATTENDED, Status.LATE, Status.LEFT_EARLY, Status.ABSENT

# Written by hand from the specification, not derived from the implementation.
EXPECTED_N3 = {
    "111": A,
    "101": A,
    "011": L,
    "001": L,
    "110": E,
    "100": E,
    "010": E,  # middle_only default: left_early
    "000": X,
}
EXPECTED_N1 = {"1": A, "0": X}
EXPECTED_N2 = {"11": A, "01": L, "10": E, "00": X}
EXPECTED_N4_SELECTED = {
    "1111": A,
    "1011": A,
    "1101": A,
    "1010": E,
    "1001": E,  # gap of 2 > tolerate_gaps=1: interrupted -> left_early
    "0111": L,
    "0101": L,  # late, then a tolerated single gap
    "0011": L,
    "0001": L,
    "0110": E,  # middle only
    "0100": E,
    "0010": E,
    "1110": E,
    "1000": E,
    "0000": X,
}
EXPECTED_N5_SELECTED = {
    "10101": A,  # two single gaps, each tolerated
    "10001": E,  # gap of 3
    "01001": E,  # late + long gap -> middle_only
    "01011": L,
    "00001": L,
    "11110": E,
    "01110": E,
}


def _bits(s: str) -> list[bool | None]:
    return [None if c == "-" else c == "1" for c in s]


def _all_patterns(n: int, with_missing: bool) -> list[tuple[bool | None, ...]]:
    values: tuple[bool | None, ...] = (True, False, None) if with_missing else (True, False)
    return list(itertools.product(values, repeat=n))


# --- hand-written tables ---------------------------------------------------------------


@pytest.mark.parametrize(
    "table", [EXPECTED_N1, EXPECTED_N2, EXPECTED_N3, EXPECTED_N4_SELECTED, EXPECTED_N5_SELECTED]
)
def test_expectation_tables(table: dict[str, Status]) -> None:
    for pattern, expected in table.items():
        assert decide(_bits(pattern)) == expected, pattern


def test_table_n3_covers_every_pattern() -> None:
    patterns = {"".join("1" if b else "0" for b in p) for p in _all_patterns(3, False)}
    assert patterns == set(EXPECTED_N3)


def test_table_n3_with_missing_snapshots() -> None:
    # A missing snapshot is skipped: decide on the rest.
    cases = {
        "-11": A,  # first missing: earliest usable snapshot counts as the start
        "1-1": A,
        "11-": A,
        "-01": L,
        "0-1": L,
        "10-": E,
        "1-0": E,
        "-10": E,
        "0-0": X,
        "--0": X,
        "--1": A,
        "1--": A,  # a single usable sighting: seen at its start and its end
        "0--": X,
        "---": None,
    }
    for pattern, expected in cases.items():
        assert decide(_bits(pattern)) == expected, pattern


# --- exhaustive properties for N = 1..5 -------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_every_pattern_properties(n: int) -> None:
    for pattern in _all_patterns(n, with_missing=True):
        result = decide(pattern)
        usable = [p for p in pattern if p is not None]
        label = "".join("-" if p is None else str(int(p)) for p in pattern)
        if not usable:
            assert result is None, label
            continue
        assert isinstance(result, Status), label
        # Missing snapshots are skipped, never read as absent.
        assert decide(usable) == result, label
        if all(usable):
            assert result == A, label
        if not any(usable):
            assert result == X, label
        if any(usable):
            assert result != X, label  # seen at least once: never absent by default
        if not usable[0] and usable[-1]:
            assert result == L or (n >= 4 and result == E), label  # late (+ long gap)
        if usable[0] and not usable[-1]:
            assert result == E, label
        if not usable[0] and not usable[-1] and any(usable):
            assert result == RuleConfig().middle_only, label
        if usable[0] and usable[-1]:
            assert result in (A, E), label  # attended, or interrupted by a long gap


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_adding_a_sighting_never_makes_attended_or_present_worse(n: int) -> None:
    for pattern in _all_patterns(n, with_missing=False):
        before = decide(pattern)
        for i, seen in enumerate(pattern):
            if seen:
                continue
            after = decide(pattern[:i] + (True,) + pattern[i + 1 :])
            if before == A:
                assert after == A, (pattern, i)
            assert after != X, (pattern, i)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_all_true_all_false_every_n(n: int) -> None:
    assert decide([True] * n) == A
    assert decide([False] * n) == X
    assert decide([None] * n) is None
    if n >= 2:
        assert decide([False] + [True] * (n - 1)) == L
        assert decide([True] * (n - 1) + [False]) == E


def test_empty_presence_is_no_data() -> None:
    assert decide([]) is None


# --- configurable rules -----------------------------------------------------------------


def test_middle_only_configurable() -> None:
    for status in Status:
        assert decide(_bits("010"), RuleConfig(middle_only=status)) == status
    assert decide(_bits("01001"), RuleConfig(middle_only=X)) == X


def test_tolerate_gaps() -> None:
    strict = RuleConfig(tolerate_gaps=0)
    assert decide(_bits("101"), strict) == E
    assert decide(_bits("101"), RuleConfig(tolerate_gaps=0, interrupted=L)) == L
    assert decide(_bits("111"), strict) == A
    lenient = RuleConfig(tolerate_gaps=2)
    assert decide(_bits("1001"), lenient) == A
    assert decide(_bits("10001"), lenient) == E
    assert decide(_bits("0101"), strict) == E  # late + any gap -> middle_only


def test_min_present_fraction() -> None:
    half = RuleConfig(min_present_fraction=0.5)
    assert decide(_bits("010"), half) == X
    assert decide(_bits("001"), half) == X
    assert decide(_bits("011"), half) == L
    assert decide(_bits("101"), half) == A
    assert decide(_bits("1-0"), half) == E  # 1 of 2 usable = 0.5: not below


def test_min_confidence_makes_weak_sightings_no_evidence() -> None:
    rules = RuleConfig(min_confidence=0.6)
    assert decide([True, True, True], rules, confidence=[0.9, 0.3, 0.9]) == A
    assert decide([True, False, True], rules, confidence=[0.3, None, 0.9]) == L
    assert decide([True], rules, confidence=[0.1]) is None
    assert decide([True, True], rules, confidence=[None, 0.9]) == A  # no value: trusted
    # Without a threshold the confidences are ignored.
    assert decide([True, False, True], confidence=[0.01, None, 0.01]) == A
    with pytest.raises(ValueError, match="confidence has 2 entries for 3"):
        usable_presence([True, True, True], [0.5, 0.5], 0.6)


def test_numpy_bools_accepted_and_junk_rejected() -> None:
    assert decide(list(np.array([True, False, True]))) == A
    with pytest.raises(TypeError, match="presence\\[1\\]"):
        decide([True, 1, True])  # type: ignore[list-item]


def test_decide_all() -> None:
    out = decide_all(
        {"s1": _bits("111"), "s2": _bits("011"), "s3": _bits("000"), "s4": _bits("---")},
        RuleConfig(),
        confidence_by_student={"s1": [0.9, 0.9, 0.9]},
    )
    assert out == {"s1": A, "s2": L, "s3": X, "s4": None}
    assert decide_all({}) == {}


def test_rule_config_json_round_trip() -> None:
    rules = RuleConfig(tolerate_gaps=2, middle_only=X, min_present_fraction=0.5)
    data = json.loads(json.dumps(rules.model_dump(mode="json")))
    assert data["middle_only"] == "absent"
    assert RuleConfig.model_validate(data) == rules
    assert RuleConfig.model_validate({}) == RuleConfig()
    assert RuleConfig.from_dict(rules.to_dict()) == rules
    assert RuleConfig.from_dict(None) == RuleConfig.from_dict({}) == RuleConfig()
    assert rules.to_dict() == data
    with pytest.raises(ValidationError):
        RuleConfig.model_validate({"tolerate_gap": 1})  # typo must not be ignored
    with pytest.raises(ValidationError):
        RuleConfig(middle_only="present")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RuleConfig(tolerate_gaps=-1)


def test_status_values_are_plain_strings() -> None:
    assert [s.value for s in Status] == ["attended", "late", "left_early", "absent"]
    assert Status("late") is L
    assert f"{Status.LEFT_EARLY}" == "left_early"
