"""Live Session page against a hostile camera: the Preview shows a message (never a traceback or a
hang), and the camera's URL credentials are shown nowhere on the page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capture.fake_camera import FakeCamera
from tests.ui.test_pages_apptest import _clear_caches, button, make_user, ok, page, texts

SECRET = "ui-S3cret-pw"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("AAS_DATABASE_URL", url)
    monkeypatch.setenv("AAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AAS_MODELS_DIR", str(models_dir))
    _clear_caches()
    yield url
    _clear_caches()


@pytest.mark.parametrize("fault", ["trickle", "huge", "non_image"])
def test_preview_of_a_hostile_camera_shows_a_message(env: str, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    from aas_core.db import repo, session_scope
    from aas_core.db.models import Role
    from aas_core.services import courses
    from aas_core.services.auth import AuthUser

    with FakeCamera() as cam:
        if fault == "trickle":
            cam.trickle(0.3, in_headers=True)  # not even the headers arrive in time
        elif fault == "huge":
            cam.huge_body(1024 * 1024 * 1024, announce=False)
        else:
            cam.non_image()
        monkeypatch.setenv("AAS_CAMERAS", json.dumps({"room": {
            "kind": "snapshot_url", "url": f"{cam.base_url}/snapshot.jpg?user=admin&pwd={SECRET}", "timeout_s": 1,
            "max_body_bytes": 1024 * 1024}}))
        _clear_caches()
        admin = make_user(env, "admin", "admin")
        with session_scope(env) as s:
            repo.add_course(s, "LV1", "Live")
        courses.update_config(env, AuthUser(0, "t", Role.ADMIN), "LV1", assignments=["camera=room"])
        at = ok(page("live_session.py", admin).run())
        assert "pwd=***" in texts(at) and SECRET not in texts(at)
        t0 = time.monotonic()
        button(at, "cam_preview").click()
        ok(at.run())  # no exception (traceback) on the page
        assert time.monotonic() - t0 < 20
        errors = [e.value for e in at.error]
        expected = {"trickle": "no image within", "huge": "larger than the limit", "non_image": "HTML page"}[fault]
        assert any(expected in e for e in errors), errors
        assert "cam_preview_img" not in at.session_state  # no stale image shown as if it were this camera's
        assert SECRET not in texts(at)
