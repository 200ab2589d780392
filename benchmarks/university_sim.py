"""A small university on one machine: N rooms, Celery workers, faults; how fast do snapshots go?

    .venv/bin/python benchmarks/university_sim.py --rooms 6 --workers 2 --gap-s 20 \
        --dead-rooms 1 --kill-worker-after-s 12 [--burst 1] [--json out.json]

What runs (all real, all on 127.0.0.1):

* one HTTP server plays every room's camera (IP Webcam API: ``/room/K/shot.jpg``, torch on/off);
  room K shows a synthetic lecture (8 enrolled students + 1 stranger, faces 36-100 px, three
  different scenes: attended / late / left early / absent); ``--dead-rooms`` answer 503;
* MariaDB (a fresh database) and RabbitMQ (a fresh vhost), both dropped afterwards;
* ``aas worker`` subprocesses: one on ``aas.capture`` (threads, one per room) and ``--workers``
  on ``aas.process`` (one task at a time each, the fast profile's real models);
* this script is the scheduler: every room's lecture starts at once (the peak), and each
  snapshot is sent to ``aas.capture`` at its time (offsets 0, gap, 2*gap);
* faults: ``--kill-worker-after-s`` sends SIGKILL to a process worker mid-run and starts a new one.

It prints (and writes with ``--json``): snapshots processed per minute per process worker over the
busy span, the processing time per snapshot, the queue wait (time from the snapshot's capture to
its processing being seen done in the database, less its processing time; polled every 0.25 s),
capture-to-decision (last capture of a lecture to its decision), every lecture's end state
("completed" or "aborted" = no data for a dead camera), and checks that nothing was lost or
duplicated (every snapshot terminal, no face stored twice).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aas_core.config import Settings  # noqa: E402
from aas_core.db import repo, session_scope  # noqa: E402
from aas_core.db.models import ClassSession, FaceObservation, SessionStatus, Snapshot, SnapshotStatus  # noqa: E402
from aas_core.domain.course_config import SessionPlan  # noqa: E402
from aas_core.tasks.dispatch import CeleryDispatch  # noqa: E402
from aas_core.tasks.work import env_for  # noqa: E402
from aas_core.tools.synthetic import make_session, scrfd_locator  # noqa: E402

PY = sys.executable


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))], 2)


class Rooms(ThreadingHTTPServer):
    """Every room's camera on one server; room K serves its scenes in turn, one per burst."""

    daemon_threads = True

    def __init__(self, jpegs: list[bytes], dead: set[int], burst: int) -> None:
        self.jpegs, self.dead, self.burst = jpegs, dead, burst
        self.grabs: dict[int, int] = {}
        self.torch: dict[int, bool] = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Rooms

    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "room" or not parts[1].isdigit():
            self.send_error(404)
            return
        room, what = int(parts[1]), parts[2]
        if room in self.server.dead:
            self.send_error(503, "camera offline")
            return
        if what in ("enabletorch", "disabletorch"):
            with self.server.lock:
                self.server.torch[room] = what == "enabletorch"
            body, ctype = b"OK", "text/plain"
        elif what == "shot.jpg":
            with self.server.lock:
                n = self.server.grabs.get(room, 0)
                self.server.grabs[room] = n + 1
            body, ctype = self.server.jpegs[(n // self.server.burst) % len(self.server.jpegs)], "image/jpeg"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def aas(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([PY, "-m", "aas_core.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    if r.returncode:
        raise SystemExit(f"aas {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def start_worker(env: dict[str, str], log: Path, queues: str, concurrency: int, name: str) -> subprocess.Popen:
    fh = log.open("wb")
    p = subprocess.Popen([PY, "-m", "aas_core.cli", "worker", "--queues", queues, "--concurrency", str(concurrency),
                          "--name", f"{name}@%h"], env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                         start_new_session=True)
    fh.close()
    end = time.monotonic() + 180
    while " ready." not in log.read_text(errors="replace"):
        if p.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"worker {name} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rooms", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2, help="process workers (one task at a time each)")
    ap.add_argument("--gap-s", type=float, default=20.0, help="seconds between a lecture's snapshots")
    ap.add_argument("--burst", type=int, default=1, help="frames per snapshot")
    ap.add_argument("--dead-rooms", type=int, default=1)
    ap.add_argument("--kill-worker-after-s", type=float, default=None)
    ap.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672")
    ap.add_argument("--mysql", default="mysql+pymysql://root@127.0.0.1:3306")
    ap.add_argument("--models-dir", type=Path, default=ROOT.parent / "shared" / "models")
    ap.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "data" / "faces_dev")
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="aas_sim_"))
    tag = secrets.token_hex(4)
    dbname, vhost = f"aas_sim_{tag}", f"aas_sim_{tag}"
    server_engine = create_engine(a.mysql, isolation_level="AUTOCOMMIT")
    with server_engine.connect() as c:
        c.execute(text(f"CREATE DATABASE `{dbname}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True)
    url = f"{a.mysql}/{dbname}?charset=utf8mb4"
    broker = f"{a.broker}/{vhost}"
    workers: list[subprocess.Popen] = []
    server: Rooms | None = None
    try:
        # --- a class and its enrollment (once), the same roster on every room's course -------------
        ss = make_session(a.faces, scrfd_locator(a.models_dir), n_students=8, n_strangers=1, seed=11)
        snaps = ss.write(tmp / "snaps")
        for sid, paths in ss.enroll.items():
            d = tmp / "enroll" / sid
            d.mkdir(parents=True)
            for p in paths:
                (d / p.name).symlink_to(p)
        dead = set(range(a.rooms - a.dead_rooms, a.rooms))
        server = Rooms([cv2.imencode(".jpg", cv2.imread(str(p)), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
                        for p in snaps], dead, a.burst)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        port = server.server_address[1]
        cams = {f"room{k}": {"kind": "ipwebcam", "url": f"http://127.0.0.1:{port}/room/{k}", "timeout_s": 3}
                for k in range(a.rooms)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("AAS_")}
        env.update(AAS_DATABASE_URL=url, AAS_DATA_DIR=str(tmp / "data"), AAS_MODELS_DIR=str(a.models_dir),
                   AAS_PROFILE="fast", AAS_CAMERAS=json.dumps(cams), AAS_CAPTURE_WINDOW_S="4",
                   AAS_LIGHT_SETTLE_S="0.2", PYTHONPATH=str(ROOT))
        aas(env, "init")
        aas(env, "course", "add", "C00", "--name", "Room 0 lecture")
        out = aas(env, "enroll-dir", str(tmp / "enroll"), "--course", "C00")
        for sid in sorted({ln.split("/")[0] for ln in out.splitlines() if ": held for review: " in ln}):
            aas(env, "student", "review", sid, "--accept-all")
        for k in range(1, a.rooms):
            with session_scope(url) as s:
                course = repo.add_course(s, f"C{k:02d}", f"Room {k} lecture", actor="sim")
                s.flush()
                for st in repo.roster(s, repo.get_course(s, "C00")):
                    repo.enroll_in_course(s, course, st, actor="sim")

        # --- workers ------------------------------------------------------------------------------
        wenv = {**env, "AAS_BROKER_URL": broker}
        workers.append(start_worker(wenv, tmp / "capture.log", "capture", min(a.rooms, 32), "capture"))
        for w in range(a.workers):
            workers.append(start_worker(wenv, tmp / f"process{w}.log", "process", 1, f"process{w}"))
        settings = Settings(database_url=url, data_dir=tmp / "data", models_dir=a.models_dir, profile="fast",
                            broker_url=broker, cameras=cams)
        from aas_core.tasks.app import celery_app

        send = CeleryDispatch(env_for(settings), celery_app(settings))
        svc = send.env.service(None)

        # --- the lectures: every room at once, the script as scheduler ---------------------------------
        offsets = [0.0, a.gap_s, 2 * a.gap_s]
        sessions = {k: svc.start(f"C{k:02d}", plan=SessionPlan.for_camera(offsets, f"room{k}"),
                                 camera_name=f"room{k}", actor="sim") for k in range(a.rooms)}
        t0 = time.monotonic()
        killed_at: float | None = None
        in_hand = 0
        seen: dict[int, float] = {}  # snapshot id -> wall time it was first seen terminal
        due = sorted((off, k, i) for k in range(a.rooms) for i, off in enumerate(offsets))
        sent = 0
        while True:
            now = time.monotonic() - t0
            while sent < len(due) and due[sent][0] <= now:
                _, k, i = due[sent]
                send.capture(sessions[k], i)
                sent += 1
            if a.kill_worker_after_s is not None and killed_at is None and now >= a.kill_worker_after_s:
                victim = workers[1]
                log0 = (tmp / "process0.log").read_text(errors="replace")
                in_hand = log0.count("] received") - log0.count("] succeeded")
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                killed_at = now
                print(f"{now:6.1f} s: SIGKILL to process worker 0 (pid {victim.pid}, {in_hand} task(s) in hand); "
                      "starting a new one", flush=True)
                workers[1] = start_worker(wenv, tmp / "process0b.log", "process", 1, "process0b")
            with session_scope(url) as s:
                rows = s.execute(select(Snapshot.id, Snapshot.status)).all()
                states = s.execute(select(ClassSession.id, ClassSession.status)
                                   .where(ClassSession.id.in_(list(sessions.values())))).all()
            wall = time.time()
            for sid, st in rows:
                if st != SnapshotStatus.CAPTURED and sid not in seen:
                    seen[sid] = wall
            if sent == len(due) and all(st in (SessionStatus.COMPLETED, SessionStatus.ABORTED) for _, st in states):
                break
            if now > a.timeout_s:
                print("timed out", flush=True)
                break
            time.sleep(0.25)

        # --- figures --------------------------------------------------------------------------------
        with session_scope(url) as s:
            snaps_rows = s.scalars(select(Snapshot).where(Snapshot.session_id.in_(list(sessions.values())))).all()
            lat, proc, wait = [], [], []
            first_cap, last_done = None, None
            for x in snaps_rows:
                if x.status != SnapshotStatus.PROCESSED or x.captured_at is None or x.id not in seen:
                    continue
                cap = x.captured_at.replace(tzinfo=UTC).timestamp()  # stored as naive UTC
                ms = ((x.info or {}).get("timings_ms") or {}).get("total", 0.0) / 1000
                latency = seen[x.id] - cap
                lat.append(latency)
                proc.append(ms)
                wait.append(max(0.0, latency - ms))
                first_cap = cap if first_cap is None else min(first_cap, cap)
                last_done = seen[x.id] if last_done is None else max(last_done, seen[x.id])
            decided = []
            ends = {}
            for k, sid in sessions.items():
                sess = s.get(ClassSession, sid)
                ends[f"room{k}"] = sess.status.value
                caps = [x.captured_at for x in sess.snapshots if x.captured_at]
                if sess.status == SessionStatus.COMPLETED and caps and sess.ended_at:
                    decided.append((sess.ended_at - max(caps)).total_seconds())
            terminal = sum(x.status != SnapshotStatus.CAPTURED for x in snaps_rows)
            dup = s.execute(select(func.count()).select_from(
                select(FaceObservation.snapshot_id, FaceObservation.x1, FaceObservation.y1, FaceObservation.x2,
                       FaceObservation.y2).group_by(FaceObservation.snapshot_id, FaceObservation.x1,
                                                    FaceObservation.y1, FaceObservation.x2, FaceObservation.y2)
                .having(func.count() > 1).subquery())).scalar()
            by_status = {st.value: sum(x.status == st for x in snaps_rows) for st in SnapshotStatus}
        processed = by_status["processed"]
        span_min = ((last_done - first_cap) / 60) if first_cap and last_done else None
        report = {
            "rooms": a.rooms, "dead_rooms": a.dead_rooms, "process_workers": a.workers, "gap_s": a.gap_s,
            "burst_frames": a.burst,
            "worker_killed_at_s": round(killed_at, 1) if killed_at is not None else None,
            "tasks_in_hand_of_killed_worker": in_hand if killed_at is not None else None,
            "snapshots": {"planned": a.rooms * 3, **by_status, "terminal": terminal},
            "duplicate_faces": int(dup or 0),
            "lectures": ends,
            "processing_s": {"p50": pct(proc, 0.5), "p95": pct(proc, 0.95)},
            "queue_wait_s": {"p50": pct(wait, 0.5), "p95": pct(wait, 0.95), "max": pct(wait, 1.0)},
            "capture_to_processed_s": {"p50": pct(lat, 0.5), "p95": pct(lat, 0.95)},
            "capture_to_decision_s": {"p50": pct(decided, 0.5), "p95": pct(decided, 0.95)},
            "busy_span_min": round(span_min, 2) if span_min else None,
            "snapshots_per_min_per_worker": round(processed / span_min / a.workers, 1) if span_min else None,
            "snapshots_per_min_per_worker_at_saturation": round(60 / statistics.mean(proc), 1) if proc else None,
        }
        print(json.dumps(report, indent=1))
        if a.json:
            a.json.write_text(json.dumps(report, indent=1))
        ok = terminal == a.rooms * 3 and not dup and all(
            v == ("aborted" if int(k[4:]) in dead else "completed") for k, v in ends.items())
        print("CHECK:", "every lecture decided or no data, nothing lost, nothing duplicated" if ok else "FAILED")
    finally:
        for p in workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in workers:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if server is not None:
            server.shutdown()
        from aas_core.db import engine as eng

        eng.get_engine(url).dispose()
        with server_engine.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS `{dbname}`"))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
