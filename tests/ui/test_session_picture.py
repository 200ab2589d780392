"""The "How a session works" picture on Home puts each snapshot where the capture plan takes it."""

from __future__ import annotations

import pytest

from aas_core.domain.course_config import PlanConfig
from aas_core.ui.session_picture import how_it_works_lines, plan_shots, timeline_figure


def _markers(fig):  # type: ignore[no-untyped-def]
    [shots] = [t for t in fig.data if t.name == "snapshot"]
    return list(shots.x), list(shots.text)


def test_the_default_plan_draws_three_snapshots_at_its_times() -> None:
    plan = PlanConfig()  # 5 min, +30 min, random in [36, 49] min of a 50-min class
    xs, labels = _markers(timeline_figure(plan))
    assert labels == ["1", "2", "3"]
    assert xs[0] == pytest.approx(plan.first_after_s / 60)
    assert xs[1] == pytest.approx((plan.first_after_s + plan.second_after_s) / 60)
    lo, hi = plan.capture_plan().last_window
    assert xs[2] == pytest.approx((lo + hi) / 2 / 60)
    # the random last one's window is the shaded band, in minutes
    [band] = [s for s in timeline_figure(plan).layout.shapes if s.type == "rect"]
    assert (band.x0, band.x1) == pytest.approx((lo / 60, hi / 60))
    # one light bar per snapshot, at the same times
    [light] = [t for t in timeline_figure(plan).data if t.name == "light on"]
    assert list(light.x) == pytest.approx(xs)


def test_every_scheduled_time_falls_on_a_marker_or_in_the_window() -> None:
    plan = PlanConfig(snapshots=5, first_after_s=600, second_after_s=2400, session_length_s=5400, margin_s=120)
    shots = plan_shots(plan)
    assert [s.index for s in shots] == [1, 2, 3, 4, 5]
    for seed in range(20):
        times = [t / 60 for t in plan.schedule(seed)]
        assert times[:-1] == pytest.approx([s.minute for s in shots[:-1]])
        lo, hi = shots[-1].window  # type: ignore[misc]
        assert lo <= times[-1] <= hi


def test_a_one_snapshot_plan_has_no_random_window() -> None:
    plan = PlanConfig(snapshots=1)
    assert [(s.index, s.window) for s in plan_shots(plan)] == [(1, None)]
    assert not [s for s in timeline_figure(plan).layout.shapes if s.type == "rect"]


def test_the_text_uses_the_plans_numbers_and_names_the_statuses() -> None:
    text = " ".join(how_it_works_lines(PlanConfig(first_after_s=600, burst_frames=4, burst_interval_s=0.5)))
    assert "the first 10 min after the start" in text
    assert "4 frames 0.5 s apart" in text
    assert "between minute 41 and 49" in text  # (600 + 1800 + 60) s .. (3000 - 60) s
    for status in ("attended", "late", "left early", "absent"):
        assert f"**{status}**" in text
