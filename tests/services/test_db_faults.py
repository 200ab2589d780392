"""Database faults: lost connections, a crash while writing attendance, concurrent sessions.

The SessionService runs for real against SQLite and the real MariaDB; only the vision
pipeline is replaced by ``fake_vision`` (these tests are about the database). Connection
loss is simulated on MariaDB by ``KILL CONNECTION`` of every connection of the test
database from a separate root connection: to the client that is exactly what a server
restart looks like, without restarting the shared server.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fake_vision import FakePipeline, scene
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import object_session

from aas_core.config import Settings
from aas_core.db import init_db, repo, session_scope
from aas_core.db.models import (
    AttendanceRecord,
    AuditLog,
    ClassSession,
    FaceSample,
    Role,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
)
from aas_core.db.retry import is_transient, retry_db, retrying
from aas_core.media.store import ImageStore
from aas_core.services import privacy
from aas_core.services.auth import AuthUser
from aas_core.services.enrollment import enroll_images
from aas_core.services.sessions import SessionService

ADMIN = AuthUser(0, "admin", Role.ADMIN)
COURSES = {"A101": {"A1": 0, "A2": 1, "A3": 2}, "B202": {"B1": 3, "B2": 4, "B3": 5}}
SEAT_OF = {sn: seat for c in COURSES.values() for sn, seat in c.items()}
# who sits in each of the three snapshots, and what that must give under the default rules
SNAPS = {"A101": [{0, 1}, {0, 1, 2}, {0, 2}], "B202": [{3, 4, 5}, {3}, {3, 5}]}
EXPECTED = {"A101": {"A1": "attended", "A2": "left_early", "A3": "late"},
            "B202": {"B1": "attended", "B2": "left_early", "B3": "attended"}}


def _settings(root: Path) -> Settings:
    return Settings(data_dir=root, database_url="sqlite://")


def _enroll(url: str, store: ImageStore, pipe: FakePipeline, settings: Settings, sn: str, course: str) -> None:
    with session_scope(url) as s:
        st = repo.add_student(s, sn, f"Student {sn}", consent=True)
        repo.enroll_in_course(s, repo.get_course(s, course), st)
        [o] = enroll_images(s, st, [(f"{sn}.png", scene({SEAT_OF.get(sn, 6)}))], pipe, store, settings)
        assert o.accepted, o.reasons


def _school(url: str, store: ImageStore, pipe: FakePipeline, settings: Settings) -> None:
    init_db(url)
    with session_scope(url) as s:
        for code in COURSES:
            repo.add_course(s, code, code)
    for code, studs in COURSES.items():
        for sn in studs:
            _enroll(url, store, pipe, settings, sn, code)


def _school_env(url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path / "data")
    pipe = FakePipeline()
    settings = _settings(tmp_path / "data")
    _school(url, store, pipe, settings)
    return url, store, pipe, settings


@pytest.fixture
def env(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return _school_env(db_url, tmp_path)


@pytest.fixture
def mysql_env(mysql_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return _school_env(mysql_url, tmp_path)


def _records(url: str, session_id: int) -> dict[str, str]:
    with session_scope(url) as s:
        sess = s.get(ClassSession, session_id)
        return {r.student.student_number: r.final_status for r in sess.records}


def _kill_all_connections(url: str) -> int:
    """KILL every server connection to the test database (what a server restart does to clients)."""
    u = make_url(url)
    server = create_engine(u.set(database=""), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as c:
            ids = c.execute(text("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :d AND ID <> CONNECTION_ID()"),
                            {"d": u.database}).scalars().all()
            for i in ids:
                c.execute(text(f"KILL CONNECTION {int(i)}"))
        return len(ids)
    finally:
        server.dispose()


def _kill(url: str, connection_id: int) -> None:
    server = create_engine(make_url(url).set(database=""), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as c:
            c.execute(text(f"KILL CONNECTION {int(connection_id)}"))
    finally:
        server.dispose()


# --- lost connections (MariaDB) ------------------------------------------------------------------

def test_connection_lost_between_steps_next_step_succeeds(mysql_env) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = mysql_env
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    snap0 = svc.store_snapshot(sid, 0, scene(SNAPS["A101"][0]))
    svc.process_snapshot(snap0)
    with session_scope(url) as s:
        snap0_file = s.get(Snapshot, snap0).image_path
    assert _kill_all_connections(url) >= 1  # the pool's idle connections are now dead
    # (a) the next steps just work: pool_pre_ping replaces the dead connections on checkout
    for k in (1, 2):
        snap = svc.store_snapshot(sid, k, scene(SNAPS["A101"][k]))
        svc.process_snapshot(snap)
    assert _kill_all_connections(url) >= 1
    outcome = svc.finalize(sid)
    assert outcome.statuses == EXPECTED["A101"]
    # (b) what was stored before the loss is still there
    with session_scope(url) as s:
        snap = s.get(Snapshot, snap0)
        assert snap.status == SnapshotStatus.PROCESSED and snap.image_path == snap0_file
        assert len(snap.observations) == 2
    assert store.path(snap0_file).is_file()
    assert _records(url, sid) == EXPECTED["A101"]


def test_connection_lost_mid_transaction_is_retried(mysql_env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = mysql_env
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    for k, seats in enumerate(SNAPS["A101"]):
        svc.process_snapshot(svc.store_snapshot(sid, k, scene(seats)))
    real_roster = repo.roster
    kills = []

    def roster_then_lose_connection(s, course):  # type: ignore[no-untyped-def]
        if not kills:  # first attempt: the server drops this very connection mid-transaction
            cid = s.execute(text("SELECT CONNECTION_ID()")).scalar_one()
            _kill(url, cid)
            kills.append(cid)
        return real_roster(s, course)

    monkeypatch.setattr(repo, "roster", roster_then_lose_connection)
    with pytest.raises(OperationalError) as err:
        svc.finalize(sid)
    assert is_transient(err.value)
    assert _records(url, sid) == {}  # nothing half-written
    kills.clear()
    retried = []
    outcome = retry_db(lambda: svc.finalize(sid), attempts=3, delay=0.05,
                       on_retry=lambda n, e: retried.append(type(e).__name__))
    assert retried == ["OperationalError"] and outcome.statuses == EXPECTED["A101"]
    kills.clear()  # the decorator form callers use: retrying(svc.finalize)(sid)
    assert retrying(svc.finalize, delay=0.05)(sid).statuses == EXPECTED["A101"] and len(kills) == 1
    assert _records(url, sid) == EXPECTED["A101"]
    with session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(AttendanceRecord)) == 3  # no duplicates
        assert s.get(ClassSession, sid).status == SessionStatus.COMPLETED


def test_snapshot_write_retried_after_connection_loss_leaves_one_row_one_file(mysql_env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import aas_core.services.sessions as sessions_mod

    url, store, pipe, settings = mysql_env
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    before = set(store.all_files())
    real = sessions_mod.discard_on_rollback
    kills = []

    def register_then_lose_connection(s, st, rel):  # type: ignore[no-untyped-def]
        real(s, st, rel)
        if not kills:
            cid = s.execute(text("SELECT CONNECTION_ID()")).scalar_one()
            _kill(url, cid)
            kills.append(cid)

    monkeypatch.setattr(sessions_mod, "discard_on_rollback", register_then_lose_connection)
    snap_id = retrying(svc.store_snapshot, delay=0.05)(sid, 0, scene({0, 1}))
    assert len(kills) == 1
    new_files = set(store.all_files()) - before
    with session_scope(url) as s:
        snaps = s.scalars(select(Snapshot).where(Snapshot.session_id == sid)).all()
        assert [x.id for x in snaps] == [snap_id]
        assert new_files == {store.path(snaps[0].image_path)}  # the failed attempt's file is gone


def test_retry_db_does_not_retry_real_errors() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("a bug, not a lost connection")

    with pytest.raises(ValueError):
        retry_db(bad, attempts=5, delay=0)
    assert calls == [1]


# --- finalize is all-or-nothing (both databases) --------------------------------------------------

def _session_with_snapshots(svc: SessionService, course: str) -> int:
    sid = svc.start(course)
    for k, seats in enumerate(SNAPS[course]):
        svc.process_snapshot(svc.store_snapshot(sid, k, scene(seats)))
    return sid


def test_finalize_crash_after_half_the_rows_writes_nothing(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import aas_core.services.sessions as sessions_mod

    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    sid = _session_with_snapshots(svc, "A101")
    made: list[AttendanceRecord] = []
    in_transaction: list[int] = []

    def crash_on_third(**kw):  # type: ignore[no-untyped-def]
        if len(made) == 2:
            s = object_session(made[0])
            s.flush()  # the first two rows really are in the database (inside the transaction)
            in_transaction.append(s.scalar(select(func.count()).select_from(AttendanceRecord)))
            raise RuntimeError("crash while writing attendance")
        rec = AttendanceRecord(**kw)
        made.append(rec)
        return rec

    monkeypatch.setattr(sessions_mod, "AttendanceRecord", crash_on_third)
    with pytest.raises(RuntimeError, match="crash while writing"):
        svc.finalize(sid)
    assert in_transaction == [2]
    assert _records(url, sid) == {}
    with session_scope(url) as s:
        assert s.get(ClassSession, sid).status == SessionStatus.RUNNING
        assert s.scalar(select(AuditLog).where(AuditLog.action == "session.finalize")) is None
    monkeypatch.undo()
    assert svc.finalize(sid).statuses == EXPECTED["A101"]  # and a second try completes it
    assert _records(url, sid) == EXPECTED["A101"]


def test_finalize_with_a_student_erased_concurrently(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """An admin erases a student (another connection) after finalize read the roster."""
    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    sid = _session_with_snapshots(svc, "A101")
    real_roster = repo.roster

    def roster_then_erase(s, course):  # type: ignore[no-untyped-def]
        students = list(real_roster(s, course))
        monkeypatch.setattr(repo, "roster", real_roster)
        with session_scope(url) as other:  # a separate connection commits the erasure
            privacy.erase_student(other, store, ADMIN, "A2")
        return students

    monkeypatch.setattr(repo, "roster", roster_then_erase)
    with pytest.raises(IntegrityError):  # FK: the student row is gone -> the whole transaction rolls back
        svc.finalize(sid)
    assert _records(url, sid) == {}
    outcome = svc.finalize(sid)
    assert outcome.statuses == {k: v for k, v in EXPECTED["A101"].items() if k != "A2"}
    assert _records(url, sid) == outcome.statuses


def test_no_orphan_snapshot_file_when_its_row_cannot_be_written(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    before = set(store.all_files())
    with pytest.raises(IntegrityError):
        svc.store_snapshot(sid + 1000, 0, scene({0}))  # no such session: FK violation at commit
    assert set(store.all_files()) == before


# --- concurrency (both databases) -------------------------------------------------------------------

def test_two_sessions_and_an_enrollment_at_once(env) -> None:  # type: ignore[no-untyped-def]
    url, store, _, settings = env
    results: dict[str, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run_session(course: str) -> None:
        try:
            svc = SessionService(url, store, FakePipeline(delay_s=0.05), settings)
            barrier.wait()
            results[course] = svc.run_from_images(course, [scene(x) for x in SNAPS[course]], actor=course)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    def enroll_new_student() -> None:
        try:
            barrier.wait()
            _enroll(url, store, FakePipeline(), settings, "A4", "A101")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run_session, args=(c,)) for c in COURSES]
    threads.append(threading.Thread(target=enroll_new_student))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for course, out in results.items():
        got = dict(out.statuses)  # type: ignore[attr-defined]
        extra = got.pop("A4", None)  # enrolled mid-session: on the roster or not, never seen
        assert extra in (None, "absent")
        assert got == EXPECTED[course]
        assert {k: v for k, v in _records(url, out.session_id).items() if k != "A4"} == EXPECTED[course]  # type: ignore[attr-defined]
    with session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(ClassSession).where(
            ClassSession.status == SessionStatus.COMPLETED)) == 2
        a4 = repo.get_student(s, "A4")
        assert len(s.scalars(select(FaceSample).where(FaceSample.student_id == a4.id)).all()) == 1
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 6


# --- the same with the real pipeline ------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_classes(models_dir: Path, data_dir: Path):  # type: ignore[no-untyped-def]
    """Two courses of three real identities (faces_dev) and three synthetic 960x540 snapshots each."""
    from aas_core.tools.synthetic import PATTERNS_3, list_identities, make_scene, scrfd_locator

    ids = list_identities(data_dir / "faces_dev")
    people = [k for k in ids if k.startswith("glint_")]
    classes = {"R1": people[0:3], "R2": people[3:6]}
    patterns = ["attended", "late", "left_early"]
    locate = scrfd_locator(models_dir)
    scenes = {}
    for code, studs in classes.items():
        shots = []
        for k in range(3):
            faces = [(sn, ids[sn][5 + k]) for sn, pat in zip(studs, patterns) if PATTERNS_3[pat][k]]
            faces.append((people[10], ids[people[10]][k]))  # a stranger in every snapshot
            shots.append(make_scene(faces, locate, size=(540, 960), size_range=(60, 80), seed=k).image)
        scenes[code] = shots
    return {c: {sn: ids[sn][:3] for sn in studs} for c, studs in classes.items()}, scenes


def _observations(url: str, session_id: int) -> list[tuple[int, int, tuple[str, ...]]]:
    """Per snapshot: index, number of faces, sorted names of who was recognised ("-" = unknown)."""
    from aas_core.db.models import Student

    with session_scope(url) as s:
        names = dict(s.execute(select(Student.id, Student.student_number)).tuples().all())
        sess = s.get(ClassSession, session_id)
        return [(x.index, len(x.observations),
                 tuple(sorted(names.get(o.student_id, "-") for o in x.observations)))
                for x in sess.snapshots]


def test_real_pipeline_sessions_in_parallel_match_sequential_runs(db_url: str, tmp_path: Path, fast_pipeline,
                                                                   real_classes) -> None:  # type: ignore[no-untyped-def]
    """Concurrency must not change results: two courses run at once (one shared pipeline, as in
    the dashboard) give exactly the statuses and observations of the same runs one after the other."""
    from aas_core.db.models import Student
    from aas_core.media.decode import read_image

    enroll, scenes = real_classes
    url, store, settings = db_url, ImageStore(tmp_path / "data"), _settings(tmp_path / "data")
    init_db(url)
    with session_scope(url) as s:
        for code, studs in enroll.items():
            course = repo.add_course(s, code, code)
            for sn, photos in studs.items():
                st = repo.add_student(s, sn, sn, consent=True)
                repo.enroll_in_course(s, course, st)
                outcomes = enroll_images(s, st, [(p.name, read_image(p)) for p in photos], fast_pipeline, store, settings)
                assert any(o.accepted for o in outcomes)
    svc = SessionService(url, store, fast_pipeline, settings)
    sequential = {code: svc.run_from_images(code, scenes[code]) for code in enroll}
    parallel: dict[str, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(enroll))

    def run(code: str) -> None:
        try:
            barrier.wait()
            parallel[code] = SessionService(url, store, fast_pipeline, settings).run_from_images(code, scenes[code])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in enroll]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for code in enroll:
        seq, par = sequential[code], parallel[code]
        assert par.statuses == seq.statuses and set(par.statuses) == set(enroll[code])  # type: ignore[attr-defined]
        assert _observations(url, par.session_id) == _observations(url, seq.session_id)  # type: ignore[attr-defined]
        assert _records(url, par.session_id) == par.statuses  # type: ignore[attr-defined]
        assert sum(v != "absent" for v in par.statuses.values()) >= 2  # type: ignore[attr-defined]  # it did recognise people
    with session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 12
        assert s.scalar(select(func.count()).select_from(Student)) == 6


def test_session_start_embeds_roster_photos_without_holding_the_write_lock(sqlite_url: str, tmp_path: Path) -> None:
    """Switching models re-embeds the roster's stored photos at session start; on SQLite that must
    not happen inside the transaction that created the session (it would lock every other writer
    for as long as the models run)."""
    import sqlite3

    from fake_vision import FakeEmbedder

    url, store, _, settings = _school_env(sqlite_url, tmp_path)
    path = make_url(url).database
    writes: list[str] = []

    class OtherModel(FakeEmbedder):
        name = "fake:other-model"

        def embed(self, image, faces):  # type: ignore[no-untyped-def]
            # another writer (the dashboard saving a review, say) while the model runs
            con = sqlite3.connect(path, timeout=0.5)
            try:
                con.execute("INSERT INTO audit_log (at, actor, action) VALUES ('2026-01-01', 'other', 'probe')")
                con.commit()
                writes.append("ok")
            finally:
                con.close()
            return super().embed(image, faces)

    pipe = FakePipeline()
    pipe.embedder = OtherModel()
    sid = SessionService(url, store, pipe, settings).start("A101")
    assert writes == ["ok"] * 3  # one stored photo per student of A101, each embedded with the new model
    with session_scope(url) as s:
        assert s.get(ClassSession, sid) is not None
        assert s.scalar(select(func.count()).select_from(FaceSample)
                        .where(FaceSample.model_name == "fake:other-model")) == 3


def test_a_consent_withdrawal_during_a_camera_session_stops_matching_from_the_next_snapshot(env) -> None:  # type: ignore[no-untyped-def]
    """The gallery is read per snapshot: a student who withdraws consent after the first snapshot is
    not recognised in the second (the lecture goes on; their earlier sighting stays evidence)."""
    from aas_core.capture import ImageSequenceCamera
    from aas_core.domain.course_config import SessionPlan
    from aas_core.services.camera_session import CameraSession

    url, store, pipe, settings = env
    admin = AuthUser(0, "root", Role.ADMIN)

    def on_event(kind: str, info: dict) -> None:
        if kind == "processed" and info["index"] == 0:  # worker thread, before snapshot 2 is processed
            with session_scope(url) as s:
                privacy.withdraw_consent(s, store, admin, "A1")

    seats = {SEAT_OF[sn] for sn in COURSES["A101"]}
    run = CameraSession(SessionService(url, store, pipe, settings), ImageSequenceCamera([scene(seats)] * 2, name="cam"),
                        SessionPlan.for_camera([0.0, 0.5], "cam"), course_code="A101", camera_name="cam",
                        settle_s=0.0, on_event=on_event)
    run.start()
    outcome = run.wait(60)
    assert outcome is not None
    assert outcome.statuses == {"A1": "left_early", "A2": "attended", "A3": "attended"}
