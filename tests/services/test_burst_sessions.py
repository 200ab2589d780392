"""Bursts through the real SessionService on SQLite and MariaDB: a snapshot of N frames is fused
into one snapshot (one stored image, one set of observations), a capture burst missing a frame
is still processed. Only vision is faked (``fake_vision``), with an embedder whose every frame
is a noisy view of the student: too noisy to be named from one frame, named from five."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_vision import DIM, FakeEmbedder, FakePipeline, scene
from sqlalchemy import select

from aas_core.capture import CameraError, ImageSequenceCamera
from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import ClassSession, Snapshot, SnapshotStatus
from aas_core.domain.course_config import SessionPlan
from aas_core.media.store import ImageStore
from aas_core.services.camera_session import CameraSession
from aas_core.services.enrollment import enroll_images
from aas_core.services.sessions import SessionService
from aas_core.vision.types import Detections

SEATS = {"S1": 0, "S2": 1, "S3": 2}
SNAPS = [{0, 1}, {0, 1, 2}, {0, 2}]  # who sits in each snapshot
EXPECTED = {"S1": "attended", "S2": "left_early", "S3": "late"}
SIGNAL = 0.42  # cosine of one frame's embedding to the student's own: below the 0.5 threshold


class NoisyEmbedder(FakeEmbedder):
    """The seat's vector plus noise drawn from the face's pixels: every frame its own view."""

    def embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        out = super().embed(image, faces)
        for i, (x1, y1, x2, y2) in enumerate(faces.xyxy.astype(int)):
            seed = int.from_bytes(hashlib.sha256(image[y1:y2, x1:x2].tobytes()).digest()[:8], "little")
            noise = np.random.default_rng(seed).standard_normal(DIM)
            noise -= noise @ out[i] * out[i]
            noise /= np.linalg.norm(noise)
            out[i] = SIGNAL * out[i] + np.sqrt(1 - SIGNAL**2) * noise
        return out


class NoisyPipeline(FakePipeline):
    def __init__(self) -> None:
        super().__init__()
        self.embedder = NoisyEmbedder()  # same model name: matched against the clean gallery


def frame(seats: set[int], k: int) -> np.ndarray:
    """Frame ``k`` of a burst: the same scene with its own sensor noise."""
    noise = np.random.default_rng(k).normal(0, 2.0, (100, 480, 3))
    return np.clip(scene(seats) + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def school(migrated: str, tmp_path: Path) -> tuple[str, ImageStore, Settings]:
    url = migrated
    store = ImageStore(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", database_url="sqlite://")
    clean = FakePipeline()
    with session_scope(url) as s:
        course = repo.add_course(s, "BU1", "Bursts")
        for sn, seat in SEATS.items():
            st = repo.add_student(s, sn, sn, consent=True)
            repo.enroll_in_course(s, course, st)
            [o] = enroll_images(s, st, [(f"{sn}.png", scene({seat}))], clean, store, settings)
            assert o.accepted, o.reasons
    return url, store, settings


def _stored_snapshot_files(store: ImageStore) -> list[Path]:
    return [p for p in (store.root / "snapshots").rglob("*") if p.is_file()]


def test_a_burst_per_snapshot_names_faces_no_single_frame_names(school: Any) -> None:
    url, store, settings = school
    svc = SessionService(url, store, NoisyPipeline(), settings, seat_continuity=False)
    single = svc.run_from_images("BU1", [frame(seats, 0) for seats in SNAPS])
    assert single.statuses == {sn: "absent" for sn in SEATS}  # one noisy frame: nobody named

    shown: list[np.ndarray] = []
    bursts = [[frame(seats, k) for k in range(5)] for seats in SNAPS]
    out = svc.run_from_images("BU1", bursts, on_processed=lambda k, img, r: shown.append(img))
    assert out.statuses == EXPECTED
    assert set(out.as_json()) >= {"session_id", "statuses", "unknown_faces", "snapshots"}
    assert [s["faces"] for s in out.snapshots] == [len(x) for x in SNAPS]  # one observation per face, not per frame
    with session_scope(url) as s:
        snaps = s.scalars(select(Snapshot).where(Snapshot.session_id == out.session_id)
                          .order_by(Snapshot.index)).all()
        assert [x.status for x in snaps] == [SnapshotStatus.PROCESSED] * 3
        for x, seats, img in zip(snaps, SNAPS, shown, strict=True):
            burst = x.info["burst"]
            assert burst["frames"] == burst["processed"] == 5 and burst["seen_in"] == [5] * len(seats)
            # the stored image is the frame the burst kept, and each face has one crop
            assert any(np.array_equal(img, f) for f in bursts[x.index])
            assert all(o.crop_path for o in x.observations)
            assert {o.student.student_number for o in x.observations} == {sn for sn, k in SEATS.items()
                                                                           if k in seats}
    # one stored image per snapshot of both sessions: the other frames are never written
    assert len(_stored_snapshot_files(store)) == 6


class DropsAGrab:
    """Bursts of one scene per snapshot from an ImageSequenceCamera; grab number ``fail`` errors."""

    name = "cam"
    has_light = True

    def __init__(self, frames: list[np.ndarray], fail: int) -> None:
        self.inner = ImageSequenceCamera(frames, loop=False, name="cam", has_light=True)
        self.fail = fail
        self.grabs = 0

    def grab(self) -> np.ndarray:
        self.grabs += 1
        if self.grabs - 1 == self.fail:
            raise CameraError("cam: HTTP 500")
        return self.inner.grab()

    def light(self, on: bool) -> None:
        self.inner.light(on)

    def close(self) -> None:
        self.inner.close()


def test_a_camera_burst_with_a_failing_middle_frame_is_still_processed(school: Any) -> None:
    url, store, settings = school
    # 3 snapshots x 5 frames; the camera fails grab 3 (frame 3 of snapshot 1): 4 frames are left
    frames = [frame(seats, k) for seats in SNAPS for k in range(5) if not (seats is SNAPS[0] and k == 2)]
    cam = DropsAGrab(frames, fail=2)
    plan = SessionPlan.for_camera([0.0, 0.5, 1.0], "cam", burst_frames=5, burst_interval_s=0.05)
    svc = SessionService(url, store, NoisyPipeline(), settings, seat_continuity=False)
    run = CameraSession(svc, cam, plan, course_code="BU1", camera_name="cam", settle_s=0.0)
    run.start()
    outcome = run.wait(60)
    assert outcome is not None and outcome.statuses == EXPECTED
    assert cam.grabs == 15 and cam.inner.light_events == [True, False] * 3
    assert any("frame 3 of 5" in e for e in run.runner.status.errors)
    with session_scope(url) as s:
        sess = s.get(ClassSession, run.session_id)
        assert (sess.capture_plan.burst_frames, sess.capture_plan.burst_interval_s) == (5, 0.05)
        first = next(x for x in sess.snapshots if x.index == 0)
        assert first.status == SnapshotStatus.PROCESSED and first.info["burst"]["frames"] == 4
