"""Without a broker the task bodies run in this process (``dispatch.InProcess``): a camera session
captured snapshot by snapshot from a real HTTP camera, with an injected clock, decided when the
last snapshot is terminal; a capture that ran too late; a redelivered capture; a dead camera;
kept burst frames and the orphan sweep."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2

from aas_core.config import Settings
from aas_core.db import session_scope
from aas_core.db.models import ClassSession, Role, SessionStatus, Snapshot, SnapshotStatus
from aas_core.domain.course_config import SessionPlan
from aas_core.services import privacy
from aas_core.services.auth import AuthUser
from aas_core.tasks import dispatch, work
from tests.capture.fake_camera import FakeCamera, FakeClock, closed_port
from tests.tasks.conftest import burst_of, settings_of

OFFSETS = [0.0, 600.0, 1200.0]


def _setup(school: dict[str, str], cams: dict) -> tuple[Settings, FakeClock, dispatch.InProcess]:
    settings = settings_of(school, cameras=cams, light_settle_s=0.0, capture_window_s=2.0)
    clock = FakeClock(start=datetime.now(UTC))
    send = dispatch.dispatcher(settings)
    assert isinstance(send, dispatch.InProcess)  # no AAS_BROKER_URL: everything here
    return settings, clock, dispatch.InProcess(send.env, clock)


def _session(url: str, sid: int) -> tuple[SessionStatus, list[SnapshotStatus], list[str | None], dict[str, str]]:
    with session_scope(url) as s:
        sess = s.get(ClassSession, sid)
        return (sess.status, [x.status for x in sess.snapshots], [x.error for x in sess.snapshots],
                {r.student.student_number: r.final_status for r in sess.records})


def test_a_camera_session_runs_in_process_snapshot_by_snapshot(school: dict[str, str], classroom) -> None:
    ss, _, snaps = classroom
    url = school["AAS_DATABASE_URL"]
    with FakeCamera(snaps) as cam:
        _, clock, send = _setup(school, {"room1": {"kind": "ipwebcam", "url": cam.base_url}})
        svc = send.env.service(None)
        sid = svc.start("CS1", plan=SessionPlan.for_camera(OFFSETS, "room1"), camera_name="room1")
        for k, at in enumerate(OFFSETS):
            clock.advance(at - (clock.now() - clock.start).total_seconds())  # the scheduler's tick at its time
            send.capture(sid, k)
            status, states, _, _ = _session(url, sid)
            if k < 2:
                assert status == SessionStatus.RUNNING and states == [SnapshotStatus.PROCESSED] * (k + 1)
        grabs = cam.frame_counter
        send.capture(sid, 1)  # a redelivered capture: nothing is grabbed or stored again
        assert cam.frame_counter == grabs
    status, states, _, statuses = _session(url, sid)
    assert status == SessionStatus.COMPLETED and states == [SnapshotStatus.PROCESSED] * 3
    assert sum(statuses[k] == v for k, v in ss.truth.items()) >= 7
    assert not cam.light_on and cam.light_log().count(True) == 3  # one light cycle per snapshot


def test_late_captures_and_a_dead_camera_give_missing_snapshots_never_absentees(
        school: dict[str, str], classroom) -> None:
    _, _, snaps = classroom
    url = school["AAS_DATABASE_URL"]
    with FakeCamera(snaps) as cam:
        _, clock, send = _setup(school, {"room1": {"kind": "ipwebcam", "url": cam.base_url},
                                         "dead": {"kind": "snapshot_url",
                                                  "url": f"http://127.0.0.1:{closed_port()}/snapshot.jpg"}})
        svc = send.env.service(None)
        late = svc.start("CS1", plan=SessionPlan.for_camera(OFFSETS, "room1"), camera_name="room1")
        clock.advance(700)  # the first capture ran after the second was due (a backlog, no worker free)
        send.capture(late, 0)
        assert cam.frame_counter == 0  # not grabbed at all
        dead = svc.start("CS1", plan=SessionPlan.for_camera(OFFSETS, "dead"), camera_name="dead")
        clock.start = datetime.now(UTC)
        clock.t = 1000.0
        for k, at in enumerate(OFFSETS):
            clock.advance(at - (clock.now() - clock.start).total_seconds())
            send.capture(dead, k)
    status, states, errors, _ = _session(url, late)
    assert status == SessionStatus.RUNNING and states == [SnapshotStatus.MISSING]
    assert "after its time" in errors[0]
    status, states, errors, records = _session(url, dead)
    assert status == SessionStatus.ABORTED and states == [SnapshotStatus.MISSING] * 3 and not records
    assert all(e for e in errors)


def test_kept_frames_survive_the_orphan_sweep_until_processed(school: dict[str, str], classroom) -> None:
    _, _, snaps = classroom
    url = school["AAS_DATABASE_URL"]
    settings = settings_of(school)
    env = work.env_for(settings)
    svc = env.service(None)
    sid = svc.start("CS1", plan=SessionPlan.for_images(1, "upload"), camera_name="upload")
    burst = burst_of(cv2.imread(str(snaps[0])), 2)
    snap = svc.store_snapshot(sid, 0, burst[0], camera="upload")
    kept = work.keep_frames(env, snap, burst)
    assert len(kept) == 2 and all(p.startswith("frames/") and p.endswith(".png") for p in kept)
    assert all((env.store.root / p).is_file() for p in kept)
    # PNG: the worker gets exactly the pixels (the stored JPEG is the evidence, not the input).
    assert (env.store.load(kept[1]) == burst[1]).all()
    admin = AuthUser(0, "cli", Role.ADMIN)
    with session_scope(url) as s:
        swept = privacy.sweep_orphan_files(s, env.store, admin, min_age_s=0.0)
    assert not set(kept) & set(swept) and all((env.store.root / p).is_file() for p in kept)
    assert work.process_snapshot(snap, env=env, then=dispatch.InProcess(env)) == "processed"
    assert not any((env.store.root / p).exists() for p in kept)
    with session_scope(url) as s:
        assert "frames" not in (s.get(Snapshot, snap).info or {})
        assert s.get(ClassSession, sid).status == SessionStatus.COMPLETED  # the last one decides
    # a second delivery of the same snapshot does nothing at all
    assert work.process_snapshot(snap, env=env, then=dispatch.InProcess(env)) == "processed"


def test_process_unknown_snapshot_and_decide_twice(school: dict[str, str]) -> None:
    env = work.env_for(settings_of(school))
    assert work.process_snapshot(10**9, env=env, then=dispatch.InProcess(env)) == "gone"
    assert work.decide_session(10**9, env=env) is None

