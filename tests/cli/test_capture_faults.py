"""`aas session capture` against a camera that sends one byte at a time: the command ends within
the capture window (not never), the snapshot is recorded missing, the light is off, and the
password in the camera's URL is in no output and no table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from aas_core.db import session_scope
from aas_core.db.models import Base, ClassSession, Snapshot, SnapshotStatus
from tests.capture.fake_camera import FakeCamera

ROOT = Path(__file__).resolve().parents[2]
SECRET = "cli-S3cret-pw"


def aas(env: dict[str, str], *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aas_core.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_capture_from_a_trickling_camera_ends_with_the_snapshot_missing_and_the_light_off(
        tmp_path: Path, models_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'aas.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAS_")}
    env.update(AAS_DATABASE_URL=url, AAS_DATA_DIR=str(tmp_path / "data"), AAS_MODELS_DIR=str(models_dir),
               AAS_PROFILE="fast")
    assert aas(env, "init").returncode == 0
    assert aas(env, "course", "add", "TR1", "--name", "Trickle").returncode == 0
    with FakeCamera() as cam:
        cam.trickle(0.4)  # 1 byte every 0.4 s: the 1 s per-read timeout never fires
        base = cam.base_url
        cams = {"slow": {"kind": "snapshot_url", "url": f"{base}/snapshot.jpg?user=admin&pwd={SECRET}", "timeout_s": 1,
                         "light": {"on": {"method": "GET", "url": f"{base}/enabletorch?token={SECRET}"},
                                   "off": {"method": "GET", "url": f"{base}/disabletorch?token={SECRET}"}}}}
        run_env = {**env, "AAS_CAMERAS": json.dumps(cams), "AAS_CAPTURE_WINDOW_S": "3", "AAS_LIGHT_SETTLE_S": "0.05"}
        t0 = time.monotonic()
        proc = aas(run_env, "session", "capture", "--course", "TR1", "--camera", "slow", "--offsets", "0", "--json",
                   timeout=60)
        elapsed = time.monotonic() - t0
        light = cam.light_log()
        assert cam.events_of("image_fault"), "the camera was never asked for an image"
        torch_on = cam.torch_on
    # the capture window is 3 s: the command (with its start-up) ends far below the old "never"
    assert elapsed < 30, f"took {elapsed:.0f} s"
    assert proc.returncode != 0 and "aborted" in proc.stderr, proc.stderr  # nothing usable: no attendance
    assert "snapshot 1: missing" in proc.stderr
    assert light == [True, False] and not torch_on
    assert SECRET not in proc.stdout + proc.stderr
    with session_scope(url) as s:
        sess = s.scalars(select(ClassSession)).one()
        assert sess.status.value == "aborted" and sess.ended_at is not None
        snaps = s.scalars(select(Snapshot).where(Snapshot.session_id == sess.id)).all()
        assert [x.status for x in snaps] == [SnapshotStatus.MISSING]
        assert "not complete within" in (snaps[0].error or "") or "no image within" in (snaps[0].error or "")
        dump = "\n".join(repr(row) for table in Base.metadata.sorted_tables for row in s.execute(select(table)).all())
    assert SECRET not in dump
