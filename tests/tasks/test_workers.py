"""Distributed processing against the real brokers: `aas worker` subprocesses consuming RabbitMQ
(a vhost of the test's own) and Redis (a database number of its own), MariaDB as the shared
database, real models.

* `aas session run --json` prints the same JSON with a broker as without;
* a snapshot delivered twice gets one set of observations;
* a worker killed with SIGKILL mid-task: the broker hands the task to another worker (acks_late)
  and the session is decided, with no duplicate observation;
* captures from a real HTTP camera on the capture queue, and a camera that is down ("no data");
* no worker / broker unreachable: a clear error, nothing lost.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pytest
from sqlalchemy import func, select

from aas_core.db import session_scope
from aas_core.db.models import ClassSession, FaceObservation, SessionStatus, Snapshot, SnapshotStatus
from aas_core.domain.course_config import SessionPlan
from tests.capture.fake_camera import FakeCamera, closed_port
from tests.tasks.conftest import Worker, aas, burst_of, settings_of, wait_for


def _comparable(out: dict) -> dict:
    """The outcome JSON without what differs between two runs of the same images."""
    return {**{k: v for k, v in out.items() if k != "session_id"},
            "snapshots": [{k: v for k, v in x.items() if k != "timings_ms"} for x in out["snapshots"]]}


def _observations(url: str, snapshot_id: int) -> list[tuple[float, float, float, float]]:
    with session_scope(url) as s:
        return [(o.x1, o.y1, o.x2, o.y2) for o in
                s.scalars(select(FaceObservation).where(FaceObservation.snapshot_id == snapshot_id))]


def _snapshot_status(url: str, snapshot_id: int) -> SnapshotStatus:
    with session_scope(url) as s:
        return s.get(Snapshot, snapshot_id).status


def _session_status(url: str, session_id: int) -> SessionStatus:
    with session_scope(url) as s:
        return s.get(ClassSession, session_id).status


def _frames_left(env: dict[str, str]) -> list[Path]:
    d = Path(env["AAS_DATA_DIR"]) / "frames"
    return [p for p in d.rglob("*") if p.is_file()] if d.exists() else []


def _stored_snapshot(env: dict[str, str], image, *, frames: int = 1, decide: bool = True) -> tuple[int, int]:
    """A session of one planned snapshot, stored with its burst kept for a worker (as the producer
    does before sending); returns (session id, snapshot id)."""
    from aas_core.tasks import work

    wenv = work.env_for(settings_of(env))
    svc = wenv.service(None)
    sid = svc.start("CS1", plan=SessionPlan.for_images(1, "upload"), camera_name="upload")
    burst = burst_of(image, frames)
    snap = svc.store_snapshot(sid, 0, burst[0], camera="upload")
    work.keep_frames(wenv, snap, burst)
    return sid, snap


def _send_process(env: dict[str, str], snapshot_id: int, *, decide: bool = True) -> None:
    from aas_core.tasks.app import PROCESS_TASK, celery_app

    celery_app(settings_of(env)).send_task(PROCESS_TASK, args=[snapshot_id], kwargs={"decide": decide})


# --- one worker on a RabbitMQ vhost --------------------------------------------------------------------

@pytest.fixture
def rabbit_env(school: dict[str, str], rabbit_vhost: str) -> dict[str, str]:
    return {**school, "AAS_BROKER_URL": rabbit_vhost}


@pytest.fixture(scope="module")
def shared_worker(school: dict[str, str], module_rabbit_vhost: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Worker]]:
    """One process worker on a vhost of its own, for the tests that only need a worker there (its
    start loads the models: seconds); each test counts what its worker did from its own start."""
    env = {**school, "AAS_BROKER_URL": module_rabbit_vhost}
    worker = Worker.start(env, tmp_path_factory.mktemp("shared_worker") / "worker.log", queues="process")
    try:
        yield env, worker
    finally:
        worker.stop()


def _done(worker: Worker) -> int:
    """Tasks the worker has finished (its log says "succeeded" once per task)."""
    return worker.count("succeeded in ")


def _succeeded(worker: Worker, task: str, since: int = 0) -> int:
    """How many ``task`` runs succeeded in the worker's log after its first ``since`` characters."""
    return len(re.findall(rf"{re.escape(task)}\[[^\]]+\] succeeded in ", worker.text()[since:]))


def _settled(worker: Worker) -> bool:
    """Every task the worker received has finished (nothing left over for the next test)."""
    text = worker.text()
    return text.count("] received") == text.count("succeeded in ")


def test_session_run_on_a_worker_prints_the_same_json_and_status_shows_it(
        school: dict[str, str], shared_worker: tuple[dict[str, str], Worker], classroom, tmp_path: Path) -> None:
    ss, _, snaps = classroom
    # Burst folders too: a worker must get the same frames the in-process path fuses.
    bursts = []
    for k, p in enumerate(snaps):
        d = tmp_path / f"snap{k}"
        d.mkdir()
        for j, frame in enumerate(burst_of(cv2.imread(str(p)), 2, seed=k)):
            cv2.imwrite(str(d / f"{j}.png"), frame)
        bursts.append(str(d))
    here = json.loads(aas(school, "session", "run", "--course", "CS1", *bursts, "--json").stdout)
    rabbit_env, worker = shared_worker
    wait_for(lambda: _settled(worker), 60, "the shared worker to finish earlier tests' tasks")
    before = _done(worker)
    r = aas(rabbit_env, "session", "run", "--course", "CS1", *bursts, "--json")
    there = json.loads(r.stdout)
    assert list(there) == list(here)  # same keys in the same order
    assert there["session_id"] != here["session_id"]
    assert _comparable(there) == _comparable(here)
    assert sum(v == ss.truth[k] for k, v in there["statuses"].items()) >= 7
    assert _done(worker) == before + 3  # the worker processed the three snapshots, not the CLI
    assert not _frames_left(rabbit_env)  # the lossless bursts are deleted once processed
    facts = json.loads(aas(rabbit_env, "status", "--json", "--timeout", "2").stdout)
    assert facts["broker"]["reachable"] and "guest:***@127.0.0.1:5672/aas_test_" in facts["broker"]["url"]
    assert facts["broker"]["queues"]["aas.process"]["messages"] == 0
    [w] = facts["broker"]["workers"]
    # what the worker itself counts, as its log says (the worker is the module's: earlier tests' too)
    assert w["name"].startswith(worker.name) and w["queues"] == ["aas.process"] and w["processed"] == _done(worker)
    today = {x["session_id"]: x for x in facts["sessions_today"]}
    assert today[there["session_id"]]["status"] == "completed"
    assert today[there["session_id"]]["snapshots"]["processed"] == 3
    assert facts["snapshots"]["queued"] == 0
    assert ("guest:guest" not in r.stderr + json.dumps(facts))  # the broker password is never shown


def test_a_snapshot_delivered_twice_gets_one_set_of_observations(
        shared_worker: tuple[dict[str, str], Worker], classroom) -> None:
    _, _, snaps = classroom
    image = cv2.imread(str(snaps[0]))
    rabbit_env, worker = shared_worker
    sid, snap = _stored_snapshot(rabbit_env, image)
    log_before = len(worker.text())
    _send_process(rabbit_env, snap, decide=True)
    _send_process(rabbit_env, snap, decide=True)  # the same message again (a redelivery)
    wait_for(lambda: _succeeded(worker, "aas.process_snapshot", log_before) >= 2, 120, "both deliveries")
    boxes = _observations(rabbit_env["AAS_DATABASE_URL"], snap)
    assert len(boxes) >= 5 and len(set(boxes)) == len(boxes)
    assert "'processed'" in worker.text()[log_before:]
    # Each delivery asks for the decision once everything is terminal; the session is decided once.
    wait_for(lambda: _session_status(rabbit_env["AAS_DATABASE_URL"], sid) == SessionStatus.COMPLETED, 60,
             "the decision")
    with session_scope(rabbit_env["AAS_DATABASE_URL"]) as s:
        from aas_core.db.models import AuditLog

        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "session.finalize", AuditLog.target_id == str(sid))) == 1
    wait_for(lambda: _settled(worker), 60, "the decisions asked for")


def test_two_deliveries_processed_at_the_same_moment_do_not_add_up(school: dict[str, str], classroom) -> None:
    """Both read the snapshot as still to process and both run the pipeline: the row lock makes
    the second replace the first one's observations (MariaDB, two threads, in-process)."""
    from aas_core.tasks import dispatch, work

    _, _, snaps = classroom
    _, snap = _stored_snapshot(school, cv2.imread(str(snaps[1])))
    wenv = work.env_for(settings_of(school))
    svc = wenv.service("fast")
    runs, gate = [], threading.Barrier(2)
    real_run = svc.pipeline.run

    def counted(*a, **k):  # type: ignore[no-untyped-def]
        runs.append(1)
        return real_run(*a, **k)

    svc.pipeline.run = counted  # type: ignore[method-assign]
    results: list[str] = []

    def deliver() -> None:
        gate.wait()
        results.append(work.process_snapshot(snap, env=wenv, then=dispatch.InProcess(wenv), decide=False))

    try:
        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        del svc.pipeline.run
    assert results == ["processed", "processed"]
    assert len(runs) == 2  # both really processed it (each read it as still to do)
    boxes = _observations(school["AAS_DATABASE_URL"], snap)
    assert len(boxes) >= 5 and len(set(boxes)) == len(boxes)
    assert not _frames_left(school)


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_a_worker_killed_mid_task_hands_it_to_another(broker: str, request: pytest.FixtureRequest,
                                                     school: dict[str, str], classroom, tmp_path: Path) -> None:
    url = request.getfixturevalue("rabbit_vhost" if broker == "rabbitmq" else "redis_db")
    # Redis gives an unacknowledged message back after the visibility timeout (RabbitMQ: at once).
    env = {**school, "AAS_BROKER_URL": url, "AAS_BROKER_VISIBILITY_TIMEOUT_S": "10"}
    _, _, snaps = classroom
    # Both workers load their models at the same time; whichever takes the task is killed mid-task.
    pair = [Worker.launch(env, tmp_path / f"{n}.log", queues="process") for n in ("a", "b")]
    try:
        for w in pair:
            w.wait_ready()
        sid, snap = _stored_snapshot(env, cv2.imread(str(snaps[2])), frames=6)  # a burst: seconds of work
        _send_process(env, snap, decide=True)
        wait_for(lambda: any(w.count("aas.process_snapshot[") for w in pair), 60, "a worker to take the task")
        first, second = pair if pair[0].count("aas.process_snapshot[") else pair[::-1]
        first.kill()
        db = env["AAS_DATABASE_URL"]
        if _snapshot_status(db, snap) != SnapshotStatus.CAPTURED:
            pytest.fail("the task finished before the kill: the test needs a longer task")
        wait_for(lambda: _session_status(db, sid) == SessionStatus.COMPLETED, 180, "the other worker to finish")
        assert "succeeded" in second.text() and "succeeded" not in first.text()
        boxes = _observations(db, snap)
        assert len(boxes) >= 5 and len(set(boxes)) == len(boxes)
        assert _snapshot_status(db, snap) == SnapshotStatus.PROCESSED
        assert not _frames_left(env)
    finally:
        for w in pair:
            w.stop()


def test_captures_on_the_capture_queue_and_a_camera_that_is_down(
        rabbit_env: dict[str, str], classroom, tmp_path: Path) -> None:
    """The scheduler's path: `capture(session, index)` at each snapshot's time -> a worker grabs the
    burst from the room's camera (light on, off after), stores it, processing follows on the
    process queue, and the session is decided when all are terminal. A camera that is down
    gives missing snapshots and a session closed as "no data", never a class of absentees."""
    from aas_core.tasks import dispatch, work

    ss, _, snaps = classroom
    with FakeCamera(snaps) as cam:
        cams = {"room1": {"kind": "ipwebcam", "url": cam.base_url},
                "room2": {"kind": "snapshot_url", "url": f"http://127.0.0.1:{closed_port()}/snapshot.jpg"}}
        env = {**rabbit_env, "AAS_CAMERAS": json.dumps(cams), "AAS_CAPTURE_WINDOW_S": "2", "AAS_LIGHT_SETTLE_S": "0.1"}
        worker = Worker.start(env, tmp_path / "worker.log", queues="capture,process", concurrency=3)
        try:
            wenv = work.env_for(settings_of(env))
            send = dispatch.dispatcher(settings_of(env))
            assert isinstance(send, dispatch.CeleryDispatch)
            svc = wenv.service(None)
            offsets = [0.0, 6.0, 12.0]
            ok = svc.start("CS1", plan=SessionPlan.for_camera(offsets, "room1"), camera_name="room1")
            down = svc.start("CS1", plan=SessionPlan.for_camera(offsets, "room2"), camera_name="room2")
            t0 = time.monotonic()
            for k, at in enumerate(offsets):  # as the scheduler does: each capture at its time
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                send.capture(ok, k)
                send.capture(down, k)
            db = env["AAS_DATABASE_URL"]
            wait_for(lambda: _session_status(db, ok) == SessionStatus.COMPLETED, 180, "the camera session decided")
            wait_for(lambda: _session_status(db, down) == SessionStatus.ABORTED, 60, "the dead camera's session")
            with session_scope(db) as s:
                got = s.get(ClassSession, ok)
                assert [x.status for x in got.snapshots] == [SnapshotStatus.PROCESSED] * 3
                assert all(x.camera == "room1" and x.light_used for x in got.snapshots)
                statuses = {r.student.student_number: r.final_status for r in got.records}
                dead = s.get(ClassSession, down)
                assert [x.status for x in dead.snapshots] == [SnapshotStatus.MISSING] * 3
                assert all("room2" in (x.error or "") or "127.0.0.1" in (x.error or "") for x in dead.snapshots)
                assert not dead.records  # no data, never "everybody absent"
            assert sum(statuses[k] == v for k, v in ss.truth.items()) >= 7
            assert cam.light_log()[-1] is False and not cam.light_on  # light off after the bursts
        finally:
            worker.stop()


def test_no_worker_then_a_worker_nothing_is_lost(rabbit_env: dict[str, str], classroom, tmp_path: Path) -> None:
    _, _, snaps = classroom
    r = aas(rabbit_env, "session", "run", "--course", "CS1", *map(str, snaps), "--json", "--wait", "3", check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "no snapshot was processed for 3 s (3 of 3 still queued" in r.stderr
    assert "aas worker" in r.stderr and "aas session resume" in r.stderr and "guest:guest" not in r.stderr
    sid = int(re.search(r"session (\d+): no snapshot", r.stderr).group(1))  # type: ignore[union-attr]
    facts = json.loads(aas(rabbit_env, "status", "--json", "--timeout", "1").stdout)
    assert facts["broker"]["queues"]["aas.process"]["messages"] == 3 and facts["broker"]["workers"] == []
    assert facts["snapshots"]["queued"] >= 3
    worker = Worker.start(rabbit_env, tmp_path / "worker.log", queues="process")
    try:
        wait_for(lambda: worker.count("succeeded") >= 3, 180, "the late worker")
    finally:
        worker.stop()
    out = json.loads(aas(rabbit_env, "session", "resume", str(sid), "--json").stdout)
    assert [x["status"] for x in out["snapshots"]] == ["processed"] * 3
    assert len(out["statuses"]) == 8


def test_broker_unreachable_is_a_clear_error_and_opens_nothing(school: dict[str, str], classroom) -> None:
    _, _, snaps = classroom
    env = {**school, "AAS_BROKER_URL": f"amqp://guest:s3cret@127.0.0.1:{closed_port()}//"}
    with session_scope(school["AAS_DATABASE_URL"]) as s:
        before = s.scalar(select(func.count()).select_from(ClassSession))
    # four separate commands, none depending on another: run side by side (each starts Python)
    calls = {"run": (env, ("session", "run", "--course", "CS1", *map(str, snaps), "--json"), 300),
             "worker": (env, ("worker",), 60), "status": (env, ("status", "--json"), 300),
             "no broker": ({k: v for k, v in school.items() if k != "AAS_BROKER_URL"}, ("worker",), 60)}
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {k: pool.submit(aas, e, *args, check=False, timeout=t) for k, (e, args, t) in calls.items()}
        out = {k: f.result() for k, f in futures.items()}
    r = out["run"]
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr
    assert "is not reachable" in r.stderr and "s3cret" not in r.stderr and "***" in r.stderr
    with session_scope(school["AAS_DATABASE_URL"]) as s:
        assert s.scalar(select(func.count()).select_from(ClassSession)) == before
    w = out["worker"]
    assert w.returncode == 1 and "is not reachable" in w.stderr and "s3cret" not in w.stderr
    assert out["status"].returncode == 0, out["status"].stderr
    facts = json.loads(out["status"].stdout)
    assert facts["broker"]["reachable"] is False and "refused" in facts["broker"]["error"].lower()
    nob = out["no broker"]
    assert nob.returncode == 1 and "needs a broker" in nob.stderr
