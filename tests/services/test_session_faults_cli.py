"""`aas session run` / `aas enroll` under faults, as real processes: a data dir that cannot be
written, `kill -9` mid-write, the MariaDB connection lost right before finalize.

Every command runs as a real ``aas`` process (exit code, stderr). Where a fault has to be
placed at an exact point, the child is the real CLI started through ``CHILD`` below, which
swaps in the ``fake_vision`` pipeline and, from environment variables read only by this test
code, waits at a point (so the test can ``kill -9`` it there) or KILLs its own database
connection inside finalize. Production code has no test hook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from fake_vision import scene
from sqlalchemy import select
from test_db_faults import EXPECTED, SNAPS, _school_env

from aas_core.db import session_scope
from aas_core.db.models import ClassSession, FaceSample, SessionStatus, Snapshot, SnapshotStatus, Student
from aas_core.media.store import ImageStore

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

CHILD = r"""
import os, sys, time
from pathlib import Path
sys.path.insert(0, os.environ["FAULT_TESTS_DIR"])
from fake_vision import FakePipeline
import aas_core.cli.common as common, aas_core.cli.session as cli_session
common.pipeline = cli_session.pipeline = lambda c, profile=None: FakePipeline()
import aas_core.media.store as m

def hang(what):
    # Atomic: the test polls for the flag and reads it at once (an empty read was seen).
    flag = Path(os.environ["FAULT_FLAG"])
    flag.with_suffix(".tmp").write_text(what)
    os.replace(flag.with_suffix(".tmp"), flag)
    time.sleep(300)

hang_at = os.environ.get("FAULT_HANG_AT")
if hang_at == "settle":
    real_settle = m.ImageStore.settle
    def settle(self, rel):
        hang("settle")  # the row is committed, its journal entry not yet removed
    m.ImageStore.settle = settle
elif hang_at:
    real_save_many = m.ImageStore.save_many
    def save_many(self, kind, images, **kw):
        rels = real_save_many(self, kind, images, **kw)
        if kind == hang_at:
            hang(kind)  # files written, their rows not committed
        return rels
    m.ImageStore.save_many = save_many

kill_mode = os.environ.get("FAULT_KILL_FINALIZE")
if kill_mode:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from aas_core.db import repo
    from aas_core.services.sessions import SessionService
    real_finalize, real_roster, kills, in_finalize = SessionService.finalize, repo.roster, [], []
    def finalize(self, *a, **kw):
        in_finalize.append(1)
        try:
            return real_finalize(self, *a, **kw)
        finally:
            in_finalize.pop()
    def roster(s, course):
        if in_finalize and (kill_mode == "always" or not kills):  # the server drops this very connection mid-transaction
            cid = s.execute(text("SELECT CONNECTION_ID()")).scalar_one()
            server = create_engine(make_url(os.environ["AAS_DATABASE_URL"]).set(database=""))
            with server.connect() as c:
                c.execute(text(f"KILL CONNECTION {int(cid)}"))
            server.dispose()
            kills.append(cid)
            print(f"killed connection {cid}", file=sys.stderr)
        return real_roster(s, course)
    SessionService.finalize = finalize
    import aas_core.services.sessions as sessions_mod
    sessions_mod.repo.roster = roster

from aas_core.cli import app
app(prog_name="aas")
"""


def _env(url: str, data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AAS_", "FAULT_"))}
    env.update(AAS_DATABASE_URL=url, AAS_DATA_DIR=str(data), FAULT_TESTS_DIR=str(HERE), **extra)
    return env


def aas(env: dict[str, str], *args: str, child: bool = False, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", CHILD, *args] if child else [sys.executable, "-m", "aas_core.cli", *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _kill_when_hanging(env: dict[str, str], flag: Path, *args: str) -> None:
    """Start the CLI child, wait until it hangs at the fault point, then ``kill -9`` it."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            if proc.poll() is not None:
                raise AssertionError(f"child ended before the fault point ({proc.returncode}): {proc.communicate()}")
            assert time.monotonic() < deadline, "child never reached the fault point"
            time.sleep(0.05)
        yield_point = flag.read_text()
        assert yield_point
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _images(tmp: Path, course: str = "A101") -> list[str]:
    out = []
    for k, seats in enumerate(SNAPS[course]):
        p = tmp / f"snap{k}.png"
        cv2.imwrite(str(p), scene(seats))
        out.append(str(p))
    return out


@pytest.fixture
def school(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    url, store, _, _ = _school_env(db_url, tmp_path)
    return url, store


def _media(store: ImageStore, folder: str) -> set[str]:
    base = store.root / folder
    return {p.relative_to(store.root).as_posix() for p in base.rglob("*") if p.is_file()} if base.is_dir() else set()


# --- storage failure: exit non-zero, no statuses ---------------------------------------------------

def test_session_run_exits_non_zero_when_images_cannot_be_stored(school, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, store = school
    (store.root / "crops").mkdir(exist_ok=True)
    crops_dir = store.root / "crops"
    for p in sorted(crops_dir.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    crops_dir.rmdir()
    crops_dir.write_bytes(b"")  # a file where the crops folder should be: every crop write fails
    r = aas(_env(url, store.root), "session", "run", "--course", "A101", *_images(tmp_path), "--json", child=True)
    assert r.returncode != 0, r.stdout
    assert r.stdout == ""  # no statuses as if all was fine
    assert "Traceback" not in r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert "aborted without attendance" in line and "could not store the face crops" in line
    with session_scope(url) as s:
        sess = s.scalars(select(ClassSession)).one()
        assert sess.status == SessionStatus.ABORTED and sess.records == []
        [snap] = sess.snapshots
        assert snap.status == SnapshotStatus.FAILED and "could not store the face crops" in snap.error
    assert store.pending_entries() == []


# --- kill -9 mid-write: the next purge / erase removes what no row refers to -----------------------

def test_kill_9_mid_session_run_leaves_files_the_next_purge_removes(school, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, store = school
    flag = tmp_path / "flag"
    before_crops = _media(store, "crops")
    env = _env(url, store.root, FAULT_HANG_AT="crops", FAULT_FLAG=str(flag))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "session", "run", "--course", "A101", *_images(tmp_path)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        in_flight = _media(store, "crops") - before_crops
        assert len(in_flight) == 2  # the two faces of snapshot 1, written, their rows not committed
        # While the writer runs, a purge leaves its files alone (its transaction may still commit).
        r = aas(_env(url, store.root), "purge", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["orphan_files"] == 0 and in_flight <= _media(store, "crops")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert in_flight <= _media(store, "crops")  # the orphans a kill -9 leaves
    with session_scope(url) as s:
        [snap_file] = [x.image_path for x in s.scalars(select(Snapshot))]
    r = aas(_env(url, store.root), "purge", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["orphan_files"] == 2
    assert _media(store, "crops") == before_crops  # the orphans went (seconds old: the journal says so)
    assert store.path(snap_file).is_file()  # the committed snapshot stays
    assert store.pending_entries() == []


def test_kill_9_after_commit_keeps_the_referenced_file_and_cleans_the_journal(school, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, store = school
    flag = tmp_path / "flag"
    env = _env(url, store.root, FAULT_HANG_AT="settle", FAULT_FLAG=str(flag))
    _kill_when_hanging(env, flag, "session", "run", "--course", "A101", *_images(tmp_path))
    with session_scope(url) as s:
        [snap_file] = [x.image_path for x in s.scalars(select(Snapshot))]
    assert [e.paths for e in store.pending_entries()] == [(snap_file,)]  # the writer died before settling
    r = aas(_env(url, store.root), "init")  # startup runs the journal sweep too
    assert r.returncode == 0, r.stderr
    assert store.path(snap_file).is_file() and store.pending_entries() == []


def test_kill_9_mid_enrollment_leaves_a_photo_that_erase_removes(school, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, store = school
    flag = tmp_path / "flag"
    photo = tmp_path / "a1.png"
    cv2.imwrite(str(photo), scene({7}))  # another photo (the same one would be refused as a duplicate)
    before = _media(store, "samples")
    with session_scope(url) as s:
        a1 = {x.image_path for x in s.scalars(select(FaceSample).join(Student).where(Student.student_number == "A1"))}
    env = _env(url, store.root, FAULT_HANG_AT="samples", FAULT_FLAG=str(flag))
    _kill_when_hanging(env, flag, "enroll", "A1", str(photo))
    orphan = _media(store, "samples") - before
    assert len(orphan) == 1  # the photo written, its row never committed
    r = aas(_env(url, store.root), "student", "erase", "A1", "--yes")
    assert r.returncode == 0, r.stderr
    assert "orphan_files 1" in r.stdout
    assert _media(store, "samples") == before - a1  # A1's photos and the orphan gone, the others kept
    assert store.pending_entries() == []


# --- the database lost right before finalize (MariaDB) --------------------------------------------

@pytest.fixture
def mysql_school(mysql_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    url, store, _, _ = _school_env(mysql_url, tmp_path)
    return url, store


def test_finalize_retried_after_its_connection_is_killed(mysql_school, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, store = mysql_school
    env = _env(url, store.root, FAULT_KILL_FINALIZE="once")
    r = aas(env, "session", "run", "--course", "A101", *_images(tmp_path), "--json", child=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("killed connection") == 1 and "retry 1/2" in r.stderr
    out = json.loads(r.stdout)
    assert out["statuses"] == EXPECTED["A101"]
    with session_scope(url) as s:
        assert s.get(ClassSession, out["session_id"]).status == SessionStatus.COMPLETED


def test_finalize_failing_for_good_aborts_the_session_without_a_traceback(mysql_school, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, store = mysql_school
    env = _env(url, store.root, FAULT_KILL_FINALIZE="always")
    r = aas(env, "session", "run", "--course", "A101", *_images(tmp_path), "--json", child=True)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.count("killed connection") == 3  # the first attempt and two retries
    assert "Traceback" not in r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert "aborted without attendance" in line and "finalizing failed" in line and "OperationalError" in line
    with session_scope(url) as s:
        sess = s.scalars(select(ClassSession)).one()
        assert sess.status == SessionStatus.ABORTED and sess.records == [] and sess.ended_at is not None
