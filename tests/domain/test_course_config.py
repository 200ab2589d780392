"""CourseConfig: one typed tree for every course setting; the session plan in one place."""

from __future__ import annotations

import pytest

from aas_core.domain.course_config import (
    ConfigError,
    CourseConfig,
    PlanConfig,
    SessionPlan,
    camera_session_plan,
    settable_keys,
)


def test_defaults_validate_and_round_trip() -> None:
    cfg = CourseConfig()
    assert cfg.plan.snapshots == 3 and cfg.rules.min_confidence == 0 and cfg.threshold is None
    assert CourseConfig.parse(cfg.model_dump(mode="json")) == cfg
    assert settable_keys()[:2] == ["plan.snapshots", "plan.first_after_s"] and "camera" in settable_keys()


def test_unknown_keys_and_bad_values_are_refused_with_the_field() -> None:
    with pytest.raises(ConfigError, match="plan.n: Extra inputs are not permitted"):
        CourseConfig.parse({"plan": {"n": 3}})
    with pytest.raises(ConfigError, match="rules.tolerate_gaps"):
        CourseConfig.parse({"rules": {"tolerate_gaps": -1}})
    with pytest.raises(ConfigError, match="recognition.threshold"):
        CourseConfig.parse({"recognition": {"threshold": 1.5}})
    with pytest.raises(ConfigError, match="no room for the last snapshot"):
        CourseConfig.parse({"plan": {"session_length_s": 2000}})


def test_assignments() -> None:
    cfg = CourseConfig().with_settings(["plan.snapshots=5", "rules.min_confidence=0.5", "camera=room 101",
                                        "rules.middle_only=absent", "recognition.threshold=0.4"])
    assert (cfg.plan.snapshots, cfg.rules.min_confidence, cfg.camera) == (5, 0.5, "room 101")
    assert cfg.rules.middle_only.value == "absent" and cfg.threshold == 0.4
    assert cfg.with_settings(["camera=null", "recognition.threshold=default"]).camera is None
    with pytest.raises(ConfigError, match="unknown setting 'plan'"):
        cfg.with_settings(["plan=3"])
    with pytest.raises(ConfigError, match="plan.snapshots"):
        cfg.with_settings(["plan.snapshots=lots"])


def test_session_plan_is_worked_out_in_one_place() -> None:
    plan = PlanConfig(snapshots=5)
    a = camera_session_plan(plan, 7, "cam")
    assert a == camera_session_plan(plan, 7, "cam")  # same seed, same schedule (resume after a restart)
    assert a.snapshots == 5 and len(a.offsets_s) == 5 and a.offsets_s == sorted(a.offsets_s)
    assert a.offsets_s[0] == 300 and a.plan == plan
    assert camera_session_plan(plan, 7, "cam", now=True).offsets_s == [0, 3, 6, 9, 12]
    assert camera_session_plan(plan, 7, "cam", offsets_s=[0, 2]).snapshots == 2  # room for a burst
    with pytest.raises(ValueError, match="2 offsets for 3 snapshots"):
        SessionPlan(snapshots=3, offsets_s=[0, 1])


def test_legacy_dicts_migrate() -> None:
    """The data migration 0004 from today's four dicts (and a broken one) to a CourseConfig."""
    import importlib.util
    from pathlib import Path

    import aas_core.db

    path = Path(aas_core.db.__file__).parent / "migrations" / "versions" / "0004_typed_course_config.py"
    spec = importlib.util.spec_from_file_location("m0004", path)
    mig = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mig)
    cfg = CourseConfig.parse(mig.course_config_from_legacy(
        {"snapshots": 5, "first_after_s": 60.0, "second_after_s": 600, "session_length_s": 3000},
        {"recognition": 0.33, "model": "arcface_r50", "source": "evaluation"},
        {"tolerate_gaps": 2, "min_confidence": 0.5}, {"kind": "ipwebcam", "url": "http://u@h", "name": "room1"}))
    assert (cfg.plan.snapshots, cfg.plan.first_after_s, cfg.threshold, cfg.recognition.model) == (5, 60, 0.33,
                                                                                               "arcface_r50")
    assert (cfg.rules.tolerate_gaps, cfg.rules.min_confidence, cfg.camera) == (2, 0.5, "room1")
    legacy_cli = CourseConfig.parse(mig.course_config_from_legacy({"n": 4}, None, None, None))
    assert legacy_cli.plan.snapshots == 4
    broken = CourseConfig.parse(mig.course_config_from_legacy({"snapshots": 99}, {"recognition": 7}, "x", []))
    assert broken == CourseConfig()
    assert mig.session_plan_from_legacy({"n": 3}, 0)["snapshots"] == 3
    assert mig.session_plan_from_legacy({"snapshots": 2, "source": "upload"}, 2)["source"] == "upload"
    cam = mig.session_plan_from_legacy({"offsets_s": [1, 2, 3], "snapshots": 3, "camera": "c", "source": "camera"}, 1)
    assert cam["offsets_s"] == [1, 2, 3] and cam["camera"] == "c"
    assert mig.session_plan_from_legacy(None, 4)["snapshots"] == 4


def test_burst_settings_are_bounded_settable_and_must_fit_before_the_next_snapshot() -> None:
    plan = CourseConfig().plan
    assert (plan.burst_frames, plan.burst_interval_s) == (5, 0.4)
    cfg = CourseConfig().with_settings(["plan.burst_frames=3", "plan.burst_interval_s=0.2"])
    assert (cfg.plan.burst_frames, cfg.plan.burst_interval_s) == (3, 0.2)
    assert {"plan.burst_frames", "plan.burst_interval_s"} <= set(settable_keys())
    with pytest.raises(ConfigError, match="plan.burst_frames"):
        cfg.with_settings(["plan.burst_frames=11"])
    with pytest.raises(ConfigError, match="plan.burst_frames"):
        cfg.with_settings(["plan.burst_frames=0"])
    with pytest.raises(ConfigError, match="plan.burst_interval_s"):
        cfg.with_settings(["plan.burst_interval_s=0.01"])
    with pytest.raises(ConfigError, match="plan.burst_interval_s"):
        cfg.with_settings(["plan.burst_interval_s=2.5"])
    # 10 frames 2 s apart last 18 s: more than the 10 s the last snapshot keeps from the others
    with pytest.raises(ConfigError, match="a burst of 10 frames 2 s apart lasts 18 s, longer than the 10 s"):
        CourseConfig().with_settings(["plan.margin_s=10", "plan.burst_frames=10", "plan.burst_interval_s=2"])
    with pytest.raises(ConfigError, match="longer than the 1.25 s"):  # 8 middle snapshots in 10 s
        CourseConfig.parse({"plan": {"snapshots": 10, "first_after_s": 10, "second_after_s": 10,
                                     "session_length_s": 60, "margin_s": 5}})
    assert PlanConfig(snapshots=10, first_after_s=10, second_after_s=10, session_length_s=60, margin_s=5,
                      burst_frames=1).burst_span_s == 0


def test_old_stored_plans_load_with_the_burst_defaults() -> None:
    """Config and session plans are JSON: rows written before bursts load without a migration."""
    old_course = {"plan": {"snapshots": 3, "first_after_s": 300, "second_after_s": 1800, "session_length_s": 3000,
                           "margin_s": 60}, "rules": {}, "recognition": {}, "camera": None}
    assert CourseConfig.parse(old_course).plan.burst_frames == 5
    old_session = {"snapshots": 3, "source": "camera", "offsets_s": [300, 2100, 2500], "plan": old_course["plan"],
                   "camera": "room"}
    # a session started before bursts took one photo per snapshot, and keeps saying so
    assert SessionPlan.model_validate(old_session).burst_frames == 1


def test_a_session_keeps_the_burst_it_started_with() -> None:
    plan = PlanConfig(burst_frames=3, burst_interval_s=0.25)
    for sp in (camera_session_plan(plan, 7, "cam"), camera_session_plan(plan, 7, "cam", now=True),
               camera_session_plan(plan, 7, "cam", offsets_s=[0, 1, 2])):
        assert (sp.burst_frames, sp.burst_interval_s) == (3, 0.25)
        assert SessionPlan.model_validate(sp.model_dump(mode="json")) == sp
    # an explicit schedule too tight for the burst is refused, not left to come out late or missing
    with pytest.raises(ValueError, match="0.2 s apart cannot each take a burst of 3 frames"):
        camera_session_plan(plan, 7, "cam", offsets_s=[0, 0.2, 0.4])
    # demo spacing leaves room for a long burst
    long = PlanConfig(burst_frames=10, burst_interval_s=1.0, margin_s=60)
    offsets = camera_session_plan(long, 7, "cam", now=True).offsets_s
    assert offsets[1] - offsets[0] >= 9.0
