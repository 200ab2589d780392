"""Live Session glue with real models: a camera plan run by SessionRunner in the background, the review
data, overrides (all or nothing) and the pipeline stage caches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aas_core.db.models import Role
from aas_core.domain.course_config import PlanConfig
from aas_core.services.auth import AuthUser
from aas_core.services.camera_session import start_course_capture


@pytest.fixture
def service(populated: dict[str, Any], models_dir: Path) -> Any:
    from aas_core.config import Settings
    from aas_core.media.store import ImageStore
    from aas_core.services.sessions import SessionService
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import resolve_profile

    root = Path(populated["url"].removeprefix("sqlite:///")).parent
    settings = Settings(database_url=populated["url"], data_dir=root / "data", models_dir=models_dir)
    cfg, _ = resolve_profile("auto", models_dir)
    return SessionService(populated["url"], ImageStore(root / "data"), Pipeline(cfg, models_dir), settings)


ADMIN = AuthUser(1, "admin", Role.ADMIN)


def test_camera_plan_runs_in_the_background_and_decides(populated: dict[str, Any], service: Any) -> None:
    from aas_core.capture import ImageSequenceCamera
    from aas_core.services import review as live

    # a burst of 2 frames per snapshot, both of the snapshot's scene
    frames = [img for img in populated["snapshots"] for _ in range(2)]
    camera = ImageSequenceCamera(frames, loop=False, name="demo-cam", has_light=True)
    plan = PlanConfig(snapshots=3, first_after_s=0.2, second_after_s=2.5, session_length_s=7.0, margin_s=1.5,
                      burst_frames=2, burst_interval_s=0.1)
    run = start_course_capture(service, camera, plan, course_code="CS101", camera_name="demo-cam", actor="teach",
                               settle_s=0.0)
    assert run.wait(60) is not None, "session did not finish"
    assert run.finished and run.outcome is not None
    assert sorted(run.outcome.statuses) == populated["students"]
    assert run.runner.status.taken == (0, 1, 2) and not run.runner.status.errors
    assert camera.light_events == [True, False] * 3  # light on and off around every snapshot's burst
    review = live.load_review(service.url, service.store, ADMIN, run.session_id)
    assert review.status == "completed" and review.n_snapshots == 3
    assert [v.status for v in review.snapshots] == ["processed"] * 3
    assert all(v.jpeg is not None and v.jpeg[:2] == b"\xff\xd8" for v in review.snapshots)  # JPEG bytes
    assert review.snapshots[0].captured_at is not None


def test_stopping_a_camera_run_decides_from_what_was_taken(populated: dict[str, Any], service: Any) -> None:
    from aas_core.capture import ImageSequenceCamera

    camera = ImageSequenceCamera(populated["snapshots"][:1], name="cam")
    plan = PlanConfig(snapshots=3, first_after_s=0.1, second_after_s=600, session_length_s=1800, margin_s=10)
    run = start_course_capture(service, camera, plan, course_code="CS101", camera_name="cam", actor="teach",
                               settle_s=0.0)
    for _ in range(200):
        if run.runner.status.taken:
            break
        import time

        time.sleep(0.1)
    outcome = run.stop(close_camera=True)
    assert run.runner.status.finished and outcome is not None
    assert len(outcome.statuses) == 5
    assert [s["status"] for s in outcome.snapshots][0] == "processed"
    assert [s["status"] for s in outcome.snapshots][1:] == ["missing", "missing"]


def test_review_rows_and_overrides(populated: dict[str, Any], service: Any) -> None:
    from aas_core.services import review as live
    from aas_core.services.auth import AccessDenied

    sid = populated["session_id"]
    review = live.load_review(service.url, service.store, ADMIN, sid)
    rows = live.editor_rows(review)
    assert sorted(r["student_id"] for r in rows) == populated["students"]
    assert {r["final"] for r in rows} <= set(live.STATUS_VALUES)
    seen = [r for r in rows if "✓" in r["presence"]]
    assert seen and all(r["S1"].startswith("data:image/jpeg;base64,") for r in rows)
    # edits -> changes
    edited = [dict(r) for r in rows]
    edited[0]["final"] = "absent" if edited[0]["final"] != "absent" else "late"
    edited[0]["reason"] = "checked the register"
    edited[1]["reason"] = "  "
    changes = live.changed_rows(rows, edited)
    assert list(changes) == [rows[0]["student_id"]]
    # all or nothing: one bad row (no reason) saves nothing
    bad = {**changes, rows[1]["student_id"]: ("late", "")}
    res = live.apply_overrides(service.url, ADMIN, sid, bad)
    assert res.errors and not res.saved
    again = live.load_review(service.url, service.store, ADMIN, sid)
    assert all(r.overridden_by is None for r in again.rows)
    res = live.apply_overrides(service.url, ADMIN, sid, changes)
    assert res.saved == [rows[0]["student_id"]] and not res.errors
    # an instructor of another course may not review or override it
    other = AuthUser(99, "other", Role.INSTRUCTOR, instructor_id=12345)
    with pytest.raises(AccessDenied):
        live.load_review(service.url, service.store, other, sid)
    with pytest.raises(AccessDenied):
        live.apply_overrides(service.url, other, sid, changes)


def test_stage_cache_keys_separate_what_each_stage_depends_on() -> None:
    from aas_core.ui.stages import stage_keys
    from aas_core.vision.profiles import PipelineConfig

    base = PipelineConfig(flow="tiled")
    k0 = stage_keys(base)
    assert stage_keys(base.with_(threshold=0.9)) == k0  # matching knobs never touch a stage key
    k_sr = stage_keys(base.with_(sr_below_px=80))
    assert k_sr["faces"] == k0["faces"] and k_sr["enhance"] != k0["enhance"]
    assert stage_keys(base.with_(person_conf=0.9))["faces"] == k0["faces"]  # persons unused in tiled flow
    persons = base.with_(flow="persons")
    assert stage_keys(persons.with_(person_conf=0.9))["faces"] != stage_keys(persons)["faces"]
    k_det = stage_keys(base.with_(face_conf=0.3))
    assert k_det["faces"] != k0["faces"] and k_det["embed"] != k0["embed"]


def test_draw_helpers() -> None:
    from aas_core.media import draw

    img = np.zeros((100, 200, 3), np.uint8)
    out = draw.draw_detections(img, np.array([[5, 5, 100, 95]]), np.array([[10, 10, 40, 40], [50, 10, 80, 40]]),
                               ["tile", "person"], ["#0 a", None])
    assert out.shape == img.shape and out.any() and not img.any()
    g = draw.grid([img, img[:50]], cols=2, cell=64, labels=["x", "y"])
    assert g.shape == (72, 140, 3)
    pair = draw.side_by_side(img[:50, :50], img, height=32)
    assert pair.shape[0] == 32
    assert draw.data_uri(img).startswith("data:image/jpeg;base64,")
    assert draw.fit(img, 50).shape[:2] == (25, 50)


def test_stopping_before_any_snapshot_aborts_without_attendance(populated: dict[str, Any], service: Any) -> None:
    from aas_core.capture import ImageSequenceCamera
    from aas_core.db import session_scope
    from aas_core.db.models import ClassSession

    camera = ImageSequenceCamera(populated["snapshots"][:1], name="cam")
    plan = PlanConfig(snapshots=3, first_after_s=600, second_after_s=600, session_length_s=1800, margin_s=10)
    run = start_course_capture(service, camera, plan, course_code="CS101", camera_name="cam", actor="teach",
                               settle_s=0.0)
    assert run.stop(close_camera=True) is None
    with session_scope(service.url) as s:
        sess = s.get(ClassSession, run.session_id)
        assert sess.status.value == "aborted" and not sess.records and sess.ended_at is not None


def test_run_from_images_reports_each_snapshot(populated: dict[str, Any], service: Any) -> None:
    seen = []
    outcome = service.run_from_images("CS101", populated["snapshots"][:2], actor="teach",
                                      on_processed=lambda k, img, res: seen.append((k, len(res))))
    assert [k for k, _ in seen] == [0, 1] and all(n > 0 for _, n in seen)
    assert len(outcome.statuses) == 5 and len(outcome.snapshots) == 2


def test_the_page_shows_each_snapshot_as_display_jpeg_and_the_review_reads_it_warm_or_cold(
        populated: dict[str, Any], service: Any) -> None:
    import cv2

    from aas_core.media.draw import DISPLAY_MAX_SIDE
    from aas_core.media.store import DECODED
    from aas_core.services import review as live

    shown: list[bytes] = []
    out = service.run_from_images("CS101", populated["snapshots"][:2], actor="teach",
                                  on_processed=lambda k, img, res: shown.append(live.processed_jpeg(img, res)))

    def decode(data: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    h, w = populated["snapshots"][0].shape[:2]
    s = min(1.0, DISPLAY_MAX_SIDE / max(h, w))
    assert [decode(b).shape for b in shown] == [(round(h * s), round(w * s), 3)] * 2
    warm = live.load_review(service.url, service.store, ADMIN, out.session_id)  # snapshots still in memory
    DECODED.clear()
    cold = live.load_review(service.url, service.store, ADMIN, out.session_id)  # read from disk
    for a, b in zip(warm.snapshots, cold.snapshots, strict=True):
        assert a.jpeg is not None and b.jpeg is not None
        da, db = decode(a.jpeg), decode(b.jpeg)
        assert da.shape == db.shape == (round(h * s), round(w * s), 3)
        # the same annotated picture (the memory holds the frame, the disk its JPEG)
        assert float(np.abs(da.astype(int) - db.astype(int)).mean()) < 4
