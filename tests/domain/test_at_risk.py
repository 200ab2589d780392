"""domain.at_risk: how a session counts (late / left early), the threshold, too few sessions, order."""

from __future__ import annotations

import pytest

from aas_core.domain.at_risk import credit, standing, standings


def test_late_and_left_early_count_the_courses_partial_credit() -> None:
    assert [credit(s, 1.0) for s in ("attended", "late", "left_early", "absent")] == [1, 1, 1, 0]
    assert [credit(s, 0.5) for s in ("attended", "late", "left_early", "absent")] == [1, 0.5, 0.5, 0]
    x = standing("S1", ["attended", "late", "left_early", "absent"], threshold=0.75, min_sessions=1,
                 partial_credit=1.0)
    assert (x.sessions, x.credit, x.rate, x.at_risk) == (4, 3.0, 0.75, False)  # exactly 75 % is not under 75 %
    half = standing("S1", ["attended", "late", "left_early", "absent"], threshold=0.75, min_sessions=1,
                    partial_credit=0.5)
    assert (half.rate, half.at_risk) == (0.5, True)
    assert half.counts == {"attended": 1, "late": 1, "left_early": 1, "absent": 1}
    assert half.summary() == "2 of 4 sessions (50%): attended 1, late 1, left early 1, absent 1"


def test_too_few_sessions_are_not_judged_and_no_records_is_not_zero() -> None:
    one = standing("S1", ["absent"], threshold=0.75, min_sessions=3, partial_credit=1.0)
    assert (one.rate, one.assessed, one.at_risk) == (0.0, False, False)
    none = standing("S2", [], threshold=0.75, min_sessions=1, partial_credit=1.0)
    assert (none.rate, none.assessed, none.at_risk) == (None, False, False)


def test_order_and_bad_values() -> None:
    out = standings({"S1": ["attended", "absent"], "S2": ["absent", "absent"], "S3": ["attended"] * 2,
                     "S4": ["late", "absent"]}, threshold=0.75, min_sessions=2, partial_credit=1.0)
    assert [(x.student, x.at_risk) for x in out] == [("S2", True), ("S1", True), ("S4", True), ("S3", False)]
    with pytest.raises(ValueError):
        standing("S1", ["excused"], threshold=0.75, min_sessions=1, partial_credit=1.0)
    with pytest.raises(ValueError, match="share between 0 and 1"):
        standing("S1", ["absent"], threshold=75, min_sessions=1, partial_credit=1.0)
