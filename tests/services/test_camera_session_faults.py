"""A camera session against a hostile camera: a stuck grab can be stopped at once and the session
ends closed; a failing camera whose URL holds ``pwd=`` leaves the password in no table, log or error."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aas_core.capture import IPWebcamCamera, SnapshotURLCamera
from aas_core.services.camera_session import CameraSession
from aas_core.services.sessions import SessionService
from tests.capture.fake_camera import FakeCamera

SECRET = "pw-S3cr3t-77"


@pytest.fixture
def fake() -> Iterator[FakeCamera]:
    with FakeCamera() as cam:
        yield cam


@pytest.fixture
def service(sqlite_url: str, tmp_path: Path, models_dir: Path) -> SessionService:
    from aas_core.config import Settings
    from aas_core.db import init_db, repo, session_scope
    from aas_core.media.store import ImageStore
    from aas_core.services.pipelines import pipeline_config
    from aas_core.vision.pipeline import Pipeline

    init_db(sqlite_url)
    with session_scope(sqlite_url) as s:
        repo.add_course(s, "CAM1", "Camera faults")
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path / "data", models_dir=models_dir)
    cfg, _ = pipeline_config(settings, "fast")
    return SessionService(sqlite_url, ImageStore(tmp_path / "data"), Pipeline(cfg, models_dir), settings)


def _plan(offsets: list[float]) -> Any:
    from aas_core.domain.course_config import SessionPlan

    return SessionPlan.for_camera(offsets, "room")


def dump_database(url: str) -> str:
    """Every row of every table as text (what an attacker with a database dump would read)."""
    from aas_core.db import session_scope
    from aas_core.db.models import Base

    out = []
    with session_scope(url) as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).all():
                out.append(f"{table.name}: {row!r}")
    return "\n".join(out)


def test_stopping_a_session_whose_grab_is_stuck_returns_promptly_and_closes_it(fake: FakeCamera,
                                                                                service: SessionService) -> None:
    from aas_core.db import session_scope
    from aas_core.db.models import ClassSession

    fake.trickle(0.5, in_headers=True)  # the camera never finishes even its headers
    cam = IPWebcamCamera(fake.base_url, timeout_s=30)
    run = CameraSession(service, cam, _plan([0.0, 600.0]), course_code="CAM1", camera_name="room", settle_s=0.0,
                        capture_window_s=300)
    run.start()
    deadline = time.monotonic() + 10
    while not fake.events_of("image_fault") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.runner.status.state == "capturing"
    t0 = time.monotonic()
    outcome = run.stop(close_camera=True)
    assert time.monotonic() - t0 < 5.0, "stop waited for the stuck camera"
    assert outcome is None and run.finished and not run.runner.running
    with session_scope(service.url) as s:
        sess = s.get(ClassSession, run.session_id)
        assert sess.status.value == "aborted" and sess.ended_at is not None and not sess.records
    assert fake.light_log() == [True, False] and not fake.torch_on


def test_a_failing_camera_with_a_password_in_its_url_leaks_it_nowhere(fake: FakeCamera, service: SessionService,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    from aas_core.db import session_scope
    from aas_core.db.models import Snapshot, SnapshotStatus

    fake.non_image()  # a login page served as image/jpeg
    url = f"{fake.base_url}/snapshot.jpg?user=admin&pwd={SECRET}&loginpas={SECRET}"
    events: list[tuple[str, dict[str, Any]]] = []
    with caplog.at_level(logging.DEBUG):
        cam = SnapshotURLCamera(url, timeout_s=2)
        # the camera name the caller passes may itself be a URL with credentials (a CLI user's typo)
        run = CameraSession(service, cam, _plan([0.0]), course_code="CAM1", camera_name=url, settle_s=0.0,
                            capture_window_s=0.5, backoff_s=0.01, on_event=lambda k, i: events.append((k, i)))
        run.start()
        assert run.wait(30) is None  # nothing captured: aborted, not "everybody absent"
        cam.close()
    assert fake.events_of("image_fault")
    with session_scope(service.url) as s:
        snaps = s.scalars(select(Snapshot).where(Snapshot.session_id == run.session_id)).all()
        assert [x.status for x in snaps] == [SnapshotStatus.MISSING]
        assert "HTML page" in (snaps[0].error or "") and "pwd=***" in (snaps[0].error or "")
    dump = dump_database(service.url)
    assert "snapshots" in dump and SECRET not in dump
    assert SECRET not in caplog.text and "pwd=***" in caplog.text
    assert SECRET not in json.dumps(events, default=str)
    assert all(SECRET not in e for e in run.runner.status.errors)
