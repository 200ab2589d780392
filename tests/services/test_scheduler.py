"""The scheduler with an injected clock, a real HTTP camera on loopback and real databases.

A course with a timetable gets its session opened at the meeting's start, its snapshots taken
at their times and attendance decided without anyone clicking (with the real models in one
test, with the deterministic ``fake_vision`` pipeline in the others); two schedulers and a
restart never make a second session or hand a snapshot over twice; after a restart the session
in progress resumes (a snapshot whose time passed while down is recorded missing with the
reason) and meetings slept through are listed as missed, never invented; a camera that is down
gives a "no data" session, never a class of absentees.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_vision import FakePipeline, scene
from sqlalchemy import select

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import (
    AttendanceRecord,
    AuditLog,
    CaptureDispatch,
    ClassSession,
    MissedMeeting,
    Role,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
)
from aas_core.media.store import ImageStore
from aas_core.services import courses, rooms
from aas_core.services import timetable as tt_svc
from aas_core.services.auth import AuthUser
from aas_core.services.enrollment import enroll_images
from aas_core.services.scheduler import LocalWork, Scheduler
from aas_core.services.sessions import SessionService
from tests.capture.fake_camera import FakeCamera, FakeClock

ADMIN = AuthUser(0, "admin", Role.ADMIN)
COURSE = "SCH1"
MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin (CET)
SEATS = {"S1": 0, "S2": 1, "S3": 2}
SNAPS = [{0, 1}, {0, 1, 2}, {0, 2}]  # who sits in each snapshot
EXPECTED = {"S1": "attended", "S2": "left_early", "S3": "late"}
PLAN3 = ["plan.snapshots=3", "plan.first_after_s=60", "plan.second_after_s=120", "plan.session_length_s=600",
         "plan.margin_s=30", "plan.burst_frames=1"]


class Clock(FakeClock):
    """Virtual time that tests also set to a wall-clock moment."""

    def set(self, t: datetime) -> datetime:
        self.advance((t - self.now()).total_seconds())
        return self.now()


def timetable(room: str | None = "R1", start: str = "09:00", end: str = "09:10") -> dict[str, Any]:
    return {"timezone": "Europe/Berlin", "term_start": date(2026, 3, 2), "term_end": date(2026, 3, 31),
            "weekly": [{"weekday": "Mon", "start": start, "end": end, "room": room}]}


def make_school(url: str, tmp: Path, camera_host: str | None, plan: list[str] = PLAN3,
                **settings_kw: Any) -> tuple[SessionService, Settings]:
    store = ImageStore(tmp / "data")
    settings = Settings(database_url=url, data_dir=tmp / "data", light_settle_s=0.05, capture_window_s=5,
                        **settings_kw)
    pipe = FakePipeline()
    with session_scope(url) as s:
        course = repo.add_course(s, COURSE, "Scheduled")
        for sn, seat in SEATS.items():
            st = repo.add_student(s, sn, sn, consent=True)
            repo.enroll_in_course(s, course, st)
            [o] = enroll_images(s, st, [(f"{sn}.png", scene({seat}))], pipe, store, settings)
            assert o.accepted, o.reasons
    courses.update_config(url, ADMIN, COURSE, assignments=plan)
    rooms.add_room(url, ADMIN, "R1")
    if camera_host:
        rooms.set_camera(url, ADMIN, "R1", kind="ipwebcam", host=camera_host, options={"timeout_s": 2})
    tt_svc.set_timetable(url, ADMIN, COURSE, timetable())
    return SessionService(url, store, pipe, settings), settings


def the_session(url: str) -> ClassSession:
    with session_scope(url) as s:
        sess = s.scalars(select(ClassSession)).one()
        sess.snapshots, sess.records  # noqa: B018 - loaded before the transaction ends
        return sess


def offsets(url: str) -> list[float]:
    plan = the_session(url).capture_plan
    assert plan is not None and plan.offsets_s is not None
    return plan.offsets_s


@pytest.fixture
def classroom() -> Iterator[FakeCamera]:
    with FakeCamera(images=[scene(x) for x in SNAPS]) as cam:
        yield cam


def test_a_course_with_a_timetable_gets_its_session_decided_without_anyone_clicking(
        migrated: str, tmp_path: Path, classroom: FakeCamera) -> None:
    url = migrated
    svc, settings = make_school(url, tmp_path, classroom.base_url)
    clock = Clock(start=MONDAY - timedelta(minutes=5))
    sched = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock)

    assert sched.tick(clock.now()).idle  # 08:55: nothing yet
    report = sched.tick(clock.set(MONDAY + timedelta(seconds=4)))
    [opened] = report.opened
    assert opened["key"] == f"{COURSE}@2026-03-02T08:00Z" and opened["room"] == "R1"
    sess = the_session(url)
    assert sess.status == SessionStatus.RUNNING and sess.camera_name == "R1"
    assert sess.meeting_start == MONDAY.replace(tzinfo=None) and sess.started_at == sess.meeting_start
    offs = offsets(url)
    assert offs[:2] == [60.0, 180.0] and 210 <= offs[2] <= 570  # the course's plan with its stored seed
    assert sess.seed is not None and sess.capture_plan.plan.session_length_s == 600

    for k, off in enumerate(offs):
        report = sched.tick(clock.set(MONDAY + timedelta(seconds=off)))
        assert [d["index"] for d in report.dispatched] == [k], report
        assert sched.tick(clock.now()).idle  # handed over once, not at every tick
    sess = the_session(url)
    assert sess.status == SessionStatus.COMPLETED
    assert [x.status for x in sess.snapshots] == [SnapshotStatus.PROCESSED] * 3
    assert [x.scheduled_offset_s for x in sess.snapshots] == pytest.approx(offs, rel=1e-5)  # FLOAT on MySQL
    assert [x.camera for x in sess.snapshots] == ["R1"] * 3
    assert sess.profile == "fake"  # the profile of the work that processed it
    with session_scope(url) as s:
        statuses = {r.student.student_number: r.final_status for r in
                    s.scalars(select(AttendanceRecord).where(AttendanceRecord.session_id == sess.id))}
        actors = {(a.action, a.actor) for a in s.scalars(select(AuditLog))}
    assert statuses == EXPECTED
    assert {("session.start", "scheduler"), ("session.finalize", "scheduler")} <= actors
    assert classroom.light_log() == [True, False] * 3 and not classroom.torch_on
    [health] = rooms.camera_health(url, ADMIN)
    assert health.camera == "R1" and health.last_ok_at is not None and not health.failing
    # after the meeting: nothing more happens; the next Monday's meeting is the next one
    assert sched.tick(clock.set(MONDAY + timedelta(hours=2))).idle
    [nxt] = tt_svc.next_meetings(url, ADMIN, COURSE, 1, now=clock.now())
    assert nxt.start == MONDAY + timedelta(days=7)
    [state] = tt_svc.meeting_states(url, ADMIN, MONDAY, MONDAY + timedelta(days=1), now=clock.now())
    assert (state.state, state.session_id) == ("completed", sess.id)


class Recorder:
    """Work that only records hand-overs (the scheduler's own bookkeeping under test)."""

    in_process = False

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def capture(self, session_id: int, index: int) -> None:
        self.calls.append((session_id, index))


def test_two_schedulers_and_a_restart_open_one_session_per_meeting_and_hand_each_snapshot_over_once(
        migrated: str, tmp_path: Path) -> None:
    url = migrated
    _, settings = make_school(url, tmp_path, "http://127.0.0.1:9")
    work = Recorder()
    a = Scheduler(url, settings, work, grace_s=300, redispatch_after_s=600)
    b = Scheduler(url, settings, work, grace_s=300, redispatch_after_s=600)
    t = MONDAY + timedelta(seconds=30)
    assert len(a.tick(t).opened) == 1 and b.tick(t).opened == [] and a.tick(t).opened == []
    # the unique index itself refuses a second session for the meeting (a race past the check above)
    [m] = tt_svc.meetings_between(url, MONDAY, MONDAY + timedelta(seconds=1))
    assert b._open(m) is None
    [sid] = {sess.id for sess in [the_session(url)]}
    offs = offsets(url)
    for off in offs:
        now = MONDAY + timedelta(seconds=off)
        b.tick(now)
        a.tick(now)
        Scheduler(url, settings, work).tick(now)  # a restarted scheduler (a new instance) too
    assert work.calls == [(sid, 0), (sid, 1), (sid, 2)]
    # nothing came of them (the recorder stores nothing): after redispatch_after_s they are handed over again,
    # once, by whichever scheduler ticks first; the snapshots whose window has passed are left to the work
    later = MONDAY + timedelta(seconds=offs[0] + 601)
    a.tick(later)
    b.tick(later)
    assert work.calls[3:] == [(sid, 0)]
    with session_scope(url) as s:
        d = s.get(CaptureDispatch, (sid, 0))
        assert d.attempts == 2 and d.instance == a.instance
        assert s.scalar(select(ClassSession).where(ClassSession.course_id.is_not(None))).id == sid


def test_after_a_restart_the_session_resumes_and_meetings_slept_through_are_listed_missed(
        migrated: str, tmp_path: Path) -> None:
    url = migrated
    with FakeCamera(images=[scene({0, 1, 2})]) as cam:
        plan4 = [*PLAN3, "plan.snapshots=4"]  # offsets 60, 120, 180 and a random one in [210, 570]
        svc, settings = make_school(url, tmp_path, cam.base_url, plan=plan4)
        clock = Clock(start=MONDAY)
        a = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock)
        a.tick(clock.now())
        offs = offsets(url)
        assert offs[:3] == [60.0, 120.0, 180.0]
        a.tick(clock.set(MONDAY + timedelta(seconds=60)))  # snapshot 1 taken; then the scheduler dies
        # a new scheduler (process) starts after snapshot 2's window, as snapshot 3 is due
        clock.set(MONDAY + timedelta(seconds=185))
        b = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock)
        report = b.tick(clock.now())
        assert [(x["index"], "time had passed" in x["reason"]) for x in report.recorded_missing] == [(1, True)]
        assert [d["index"] for d in report.dispatched] == [2]  # late but within its window: taken
        b.tick(clock.set(MONDAY + timedelta(seconds=offs[3])))
        sess = the_session(url)
        assert sess.status == SessionStatus.COMPLETED
        assert [x.status for x in sess.snapshots] == [SnapshotStatus.PROCESSED, SnapshotStatus.MISSING,
                                                      SnapshotStatus.PROCESSED, SnapshotStatus.PROCESSED]
        assert "a scheduler was running again" in (sess.snapshots[1].error or "")
        assert {r.final_status for r in sess.records} == {"attended"}
        assert len(cam.events_of("image")) == 3  # snapshot 2 was never grabbed late

        # nobody runs a scheduler until 16 March 09:20 (20 minutes into that meeting): the 9 March
        # meeting and this one are missed, not invented
        clock.set(datetime(2026, 3, 16, 8, 20, tzinfo=UTC))
        c = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock, grace_s=300)
        report = c.tick(clock.now())
        assert report.opened == [] and [m["key"] for m in report.missed] == [
            f"{COURSE}@2026-03-09T08:00Z", f"{COURSE}@2026-03-16T08:00Z"]
        assert c.tick(clock.now()).idle  # listed once
        with session_scope(url) as s:
            assert s.scalar(select(ClassSession).where(ClassSession.id != sess.id)) is None
            assert len(s.scalars(select(MissedMeeting)).all()) == 2
        missed = tt_svc.missed_meetings(url, ADMIN, COURSE)
        assert [m.start for m in missed] == [datetime(2026, 3, 16, 8, tzinfo=UTC), datetime(2026, 3, 9, 8, tzinfo=UTC)]
        assert "no scheduler was running" in missed[0].reason
        shown = tt_svc.show(url, ADMIN, COURSE, n=1, now=clock.now())
        assert len(shown["missed"]) == 2 and shown["next"][0]["start"] == "2026-03-23T08:00:00Z"
        # the next meeting is taken again (a scheduler that keeps ticking opens it)
        c.tick(clock.set(datetime(2026, 3, 23, 8, 0, 2, tzinfo=UTC)))
        with session_scope(url) as s:
            assert len(s.scalars(select(ClassSession)).all()) == 2


def test_a_scheduler_back_after_the_session_ended_records_the_rest_missing_and_has_it_decided(
        migrated: str, tmp_path: Path, classroom: FakeCamera) -> None:
    url = migrated
    svc, settings = make_school(url, tmp_path, classroom.base_url)
    clock = Clock(start=MONDAY)
    a = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock)
    a.tick(clock.now())
    a.tick(clock.set(MONDAY + timedelta(seconds=60)))  # snapshot 1 taken, then the scheduler is gone for an hour
    b = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock)
    report = b.tick(clock.set(MONDAY + timedelta(hours=1)))
    assert [x["index"] for x in report.recorded_missing] == [1, 2]
    assert report.dispatched == [{"session_id": the_session(url).id, "index": 2, "decide": True}]
    sess = the_session(url)
    assert sess.status == SessionStatus.COMPLETED  # decided from the one snapshot it has
    assert [x.status for x in sess.snapshots] == [SnapshotStatus.PROCESSED, SnapshotStatus.MISSING,
                                                  SnapshotStatus.MISSING]
    with session_scope(url) as s:
        presence = {r.student.student_number: r.presence for r in
                    s.scalars(select(AttendanceRecord).where(AttendanceRecord.session_id == sess.id))}
    assert presence == {"S1": [True, None, None], "S2": [True, None, None], "S3": [False, None, None]}
    assert len(classroom.events_of("image")) == 1
    assert b.tick(clock.now()).idle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_room_whose_camera_is_down_gives_a_no_data_session_never_absentees(migrated: str, tmp_path: Path) -> None:
    url = migrated
    svc, settings = make_school(url, tmp_path, f"http://127.0.0.1:{free_port()}")  # nobody listens there
    clock = Clock(start=MONDAY)
    sched = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock)
    sched.tick(clock.now())
    for off in offsets(url):
        sched.tick(clock.set(MONDAY + timedelta(seconds=off)))
    sess = the_session(url)
    assert sess.status == SessionStatus.ABORTED and sess.records == []  # "no data"
    assert [x.status for x in sess.snapshots] == [SnapshotStatus.MISSING] * 3
    assert all("cannot connect" in (x.error or "") for x in sess.snapshots)
    [health] = rooms.camera_health(url, ADMIN)
    assert health.failing and health.last_ok_at is None
    with session_scope(url) as s:
        assert s.scalars(select(AttendanceRecord)).all() == []
        assert any(a.action == "session.abort" for a in s.scalars(select(AuditLog)))


def test_a_room_without_a_camera_and_a_course_without_one_give_no_data(migrated: str, tmp_path: Path) -> None:
    url = migrated
    svc, settings = make_school(url, tmp_path, None)
    clock = Clock(start=MONDAY)
    sched = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock)
    sched.tick(clock.now())
    for off in offsets(url):
        sched.tick(clock.set(MONDAY + timedelta(seconds=off)))
    sess = the_session(url)
    assert sess.camera_name is None and sess.status == SessionStatus.ABORTED and sess.records == []
    assert all("no camera" in (x.error or "") for x in sess.snapshots)


def test_a_snapshot_stored_before_a_crash_is_processed_by_the_next_scheduler(migrated: str, tmp_path: Path,
                                                                           classroom: FakeCamera) -> None:
    url = migrated
    svc, settings = make_school(url, tmp_path, classroom.base_url)
    clock = Clock(start=MONDAY)
    Scheduler(url, settings, Recorder(), clock, instance="dead-one").tick(clock.now())
    sid = the_session(url).id
    # the dead scheduler had handed snapshot 1 over and its work stored the image, then the process died
    clock.set(MONDAY + timedelta(seconds=61))
    snap_id = svc.store_snapshot(sid, 0, scene(SNAPS[0]), camera="R1", scheduled_offset_s=60.0)
    with session_scope(url) as s:
        s.add(CaptureDispatch(session_id=sid, index=0, dispatched_at=(MONDAY + timedelta(seconds=60)).replace(
            tzinfo=None), instance="dead-one", attempts=1))
    work = LocalWork(svc, settings, clock=clock)
    report = Scheduler(url, settings, work, clock).tick(clock.now())
    assert [d["index"] for d in report.dispatched] == [0]  # in-process work of a stopped scheduler: handed over again
    with session_scope(url) as s:
        snap = s.get(Snapshot, snap_id)
        assert snap.status == SnapshotStatus.PROCESSED and len(snap.observations) == 2
    assert classroom.events_of("image") == []  # processed from the stored image, not grabbed again


def test_threaded_work_does_not_hold_up_the_tick(migrated: str, tmp_path: Path, classroom: FakeCamera) -> None:
    url = migrated
    svc, settings = make_school(url, tmp_path, classroom.base_url)
    clock = Clock(start=MONDAY)
    work = LocalWork(svc, settings, clock=clock, threads=2)
    sched = Scheduler(url, settings, work, clock)
    sched.tick(clock.now())
    for off in offsets(url):
        sched.tick(clock.set(MONDAY + timedelta(seconds=off)))
        assert work.drain(30)
    work.close()
    sess = the_session(url)
    assert sess.status == SessionStatus.COMPLETED and {r.final_status for r in sess.records} == set(EXPECTED.values())


def test_end_to_end_with_the_real_models(sqlite_url: str, tmp_path: Path, models_dir: Path, data_dir: Path,
                                         fast_pipeline) -> None:  # type: ignore[no-untyped-def]
    """Real faces, real detector and embedder: enrolled students, a timetable, ticks, a decision."""
    from aas_core.db import init_db
    from aas_core.tools.synthetic import make_session, scrfd_locator
    from aas_core.media.decode import read_image

    url = sqlite_url
    init_db(url)
    syn = make_session(data_dir / "faces_dev", scrfd_locator(models_dir), n_students=4, n_strangers=1, enroll_k=3,
                       seed=21, status_mix={"attended": 1, "late": 1, "left_early": 1, "absent": 1})
    store = ImageStore(tmp_path / "data")
    settings = Settings(database_url=url, data_dir=tmp_path / "data", models_dir=models_dir, light_settle_s=0.05,
                        capture_window_s=10)
    with session_scope(url) as s:
        course = repo.add_course(s, COURSE, "Real faces")
        for sn, paths in syn.enroll.items():
            st = repo.add_student(s, sn, sn, consent=True)
            repo.enroll_in_course(s, course, st)
            enroll_images(s, st, [(p.name, read_image(p)) for p in paths], fast_pipeline, store, settings)
    courses.update_config(url, ADMIN, COURSE, assignments=PLAN3)
    rooms.add_room(url, ADMIN, "R1")
    with FakeCamera(images=[sc.image for sc in syn.snapshots]) as cam:
        rooms.set_camera(url, ADMIN, "R1", kind="ipwebcam", host=cam.base_url, options={"timeout_s": 5})
        tt_svc.set_timetable(url, ADMIN, COURSE, timetable())
        svc = SessionService(url, store, fast_pipeline, settings)
        clock = Clock(start=MONDAY)
        sched = Scheduler(url, settings, LocalWork(svc, settings, clock=clock), clock)
        sched.tick(clock.now())
        for off in offsets(url):
            sched.tick(clock.set(MONDAY + timedelta(seconds=off)))
    sess = the_session(url)
    assert sess.status == SessionStatus.COMPLETED
    with session_scope(url) as s:
        got = {r.student.student_number: r.final_status for r in
               s.scalars(select(AttendanceRecord).where(AttendanceRecord.session_id == sess.id))}
    assert set(got) == set(syn.truth)
    right = sum(got[k] == v for k, v in syn.truth.items())
    assert right >= 3, (got, syn.truth)  # 4 students, one of each status; the pipeline gets ~99 % right
    assert {x.status for x in sess.snapshots} == {SnapshotStatus.PROCESSED}
