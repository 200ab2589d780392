"""Storage faults: a full disk while a snapshot's images are written, the pending journal, the sweep.

The SessionService runs for real on SQLite and MariaDB with the ``fake_vision`` pipeline (the
subject is the disk, not vision). A full disk is simulated at the one place bytes reach the
disk, ``aas_core.media.store._write_file``: after N image writes it writes half of the next
file and raises ``OSError(ENOSPC)``, as a real full disk does.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_vision import scene
from sqlalchemy import select
from test_db_faults import SNAPS, _school_env

import aas_core.media.store as store_mod
from aas_core.db import session_scope
from aas_core.db.models import AttendanceRecord, AuditLog, ClassSession, FaceObservation, Role, SessionStatus, Snapshot, SnapshotStatus
from aas_core.media.store import ImageStore, discard_on_rollback
from aas_core.services import privacy
from aas_core.services.auth import AuthUser
from aas_core.services.sessions import SessionFailed, SessionService, StorageFailed

ADMIN = AuthUser(0, "admin", Role.ADMIN)
FULL_CLASS = set(range(8))  # every seat taken: 8 faces, 8 crops per snapshot


@pytest.fixture
def env(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return _school_env(db_url, tmp_path)


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, folder: str, n_ok: int) -> list[Path]:
    """Let ``n_ok`` image writes into ``folder`` succeed, then fail like a full disk (half the
    bytes written, then ENOSPC). Returns the paths written (or attempted) there."""
    real = store_mod._write_file
    seen: list[Path] = []

    def write(path: Path, data: bytes) -> None:
        if f"/{folder}/" in path.as_posix():
            seen.append(path)
            if len(seen) > n_ok:
                path.write_bytes(data[: len(data) // 2])  # the half a full disk lets through
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(store_mod, "_write_file", write)
    return seen


def _leftovers(store: ImageStore, folder: str) -> list[Path]:
    """Files in a media folder, temp files included, plus journal markers."""
    base = store.root / folder
    files = [p for p in base.rglob("*") if p.is_file()] if base.is_dir() else []
    return files + [e.marker for e in store.pending_entries()]


def test_disk_full_while_writing_crops_fails_the_snapshot_and_leaves_no_crop(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    snap_id = svc.store_snapshot(sid, 0, scene(FULL_CLASS))
    attempted = _disk_full_after(monkeypatch, "crops", 5)
    with pytest.raises(StorageFailed) as err:
        svc.process_snapshot(snap_id)
    assert "No space left on device" in str(err.value) and "snapshot 1" in str(err.value)
    assert len(attempted) == 6  # five crops written, the sixth hit the full disk
    assert _leftovers(store, "crops") == []  # no crop, no half-written temp file, no journal entry
    with session_scope(url) as s:
        snap = s.get(Snapshot, snap_id)
        assert snap.status == SnapshotStatus.FAILED and "No space left on device" in snap.error
        assert snap.observations == []
        assert store.path(snap.image_path).is_file()  # the snapshot (evidence, with its row) stays


def test_disk_full_during_a_session_run_aborts_it_with_the_error(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    _disk_full_after(monkeypatch, "crops", 4)  # the first snapshot's 2 crops fit, the second's do not
    with pytest.raises(SessionFailed) as err:
        svc.run_from_images("A101", [scene(x) for x in SNAPS["A101"]])
    msg = str(err.value)
    assert err.value.aborted and "aborted" in msg and "No space left on device" in msg and "\n" not in msg
    with session_scope(url) as s:
        sess = s.get(ClassSession, err.value.session_id)
        assert sess.status == SessionStatus.ABORTED and sess.records == []
        by_index = {x.index: x for x in sess.snapshots}
        assert by_index[0].status == SnapshotStatus.PROCESSED
        assert by_index[1].status == SnapshotStatus.FAILED and "No space left on device" in by_index[1].error
        assert 2 not in by_index  # nothing more was written onto the full disk
        crops = {p for p in s.scalars(select(FaceObservation.crop_path)) if p}
    # Exactly the committed crops of snapshot 1 remain: none of snapshot 2, no temp file, no journal entry.
    assert len(crops) == 2
    assert {p.relative_to(store.root).as_posix() for p in _leftovers(store, "crops")} == crops


def test_disk_full_while_writing_the_snapshot_image_records_it_failed(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    _disk_full_after(monkeypatch, "snapshots", 1)
    with pytest.raises(SessionFailed) as err:
        svc.run_from_images("A101", [scene(x) for x in SNAPS["A101"]])
    assert "could not store the snapshot image" in str(err.value)
    with session_scope(url) as s:
        sess = s.get(ClassSession, err.value.session_id)
        assert sess.status == SessionStatus.ABORTED
        snap = {x.index: x for x in sess.snapshots}[1]
        assert snap.status == SnapshotStatus.FAILED and snap.image_path is None
        assert "No space left on device" in snap.error
        assert s.scalars(select(AttendanceRecord)).all() == []
    files = _leftovers(store, "snapshots")
    assert len(files) == 1 and files[0].suffix == ".jpg"  # snapshot 1's, committed; no temp file, no marker


# --- the pending journal ------------------------------------------------------------------------

def test_files_are_journaled_before_they_are_written_and_settled_on_commit(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, store, pipe, settings = _school_env(db_url, tmp_path)
    real = store_mod._write_file
    journaled_at_write: list[bool] = []

    def write(path: Path, data: bytes) -> None:
        if store_mod.PENDING_DIR not in path.parts:  # an image: its final path must be journaled already
            final = path.with_name(path.name.removesuffix(".part")).relative_to(store.root).as_posix()
            journaled_at_write.append(any(final in e.paths and e.alive for e in store.pending_entries()))
        real(path, data)

    monkeypatch.setattr(store_mod, "_write_file", write)
    svc = SessionService(url, store, pipe, settings)
    out = svc.run_from_images("A101", [scene(x) for x in SNAPS["A101"]])
    assert out.statuses and journaled_at_write and all(journaled_at_write)
    assert store.pending_entries() == []  # every row committed: nothing left to account for

    # A transaction that rolls back takes the file and its journal entry with it.
    with pytest.raises(RuntimeError), session_scope(url) as s:
        rel = store.save("crops", scene({1}))
        discard_on_rollback(s, store, rel)
        raise RuntimeError("boom")
    assert not (store.root / rel).exists() and store.pending_entries() == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _journal_as_dead_writer(store: ImageStore, rels: list[str]) -> Path:
    """A journal entry as a process killed mid-write leaves it (its pid no longer runs)."""
    marker = store._journal(rels, track=False)
    data = json.loads(marker.read_text())
    data.update(pid=_dead_pid(), start="1")
    marker.write_text(json.dumps(data))
    return marker


def test_sweep_deletes_files_of_dead_writers_whatever_their_age(env) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    kept = svc.store_snapshot(sid, 0, scene({0}))
    with session_scope(url) as s:
        referenced = s.get(Snapshot, kept).image_path
    young_orphans = [store.save("crops", scene({k})) for k in (1, 2)]  # seconds old: the age rule spares them
    for rel in young_orphans:
        store.settle(rel)  # forget them here: this process plays the killed writer
    (store.root / (young_orphans[0] + ".part")).write_bytes(b"half")  # its temp file, as a crash leaves it
    dead = _journal_as_dead_writer(store, [referenced, *young_orphans])
    alive_rel = store.save("crops", scene({3}))  # a writer still running (this process): not touched
    traversal = _journal_as_dead_writer(store, ["../outside.jpg", "samples/../../outside.jpg"])
    outside = store.root.parent / "outside.jpg"
    outside.write_bytes(b"x")

    with session_scope(url) as s:
        assert privacy.sweep_orphan_files(s, store, ADMIN, dry_run=True) == sorted(young_orphans)
    assert dead.exists() and all((store.root / r).exists() for r in young_orphans)
    with session_scope(url) as s:
        assert privacy.sweep_orphan_files(s, store, ADMIN, journal_only=True) == sorted(young_orphans)
    assert not any((store.root / r).exists() for r in young_orphans)
    assert not (store.root / (young_orphans[0] + ".part")).exists()
    assert store.path(referenced).is_file() and store.path(alive_rel).is_file() and outside.is_file()
    assert not dead.exists() and not traversal.exists()
    assert [e.paths for e in store.pending_entries()] == [(alive_rel,)]
    with session_scope(url) as s:
        audit = s.scalars(select(AuditLog).where(AuditLog.action == "media.sweep")).all()
        assert [a.details for a in audit] == [{"files": 2, "dry_run": True, "journal_entries": 2},
                                              {"files": 2, "dry_run": False, "journal_entries": 2}]
    with session_scope(url) as s:  # journal empty of dead writers: the startup check does nothing
        assert privacy.sweep_orphan_files(s, store, ADMIN, journal_only=True) == []


def test_writer_identity_tells_a_reused_pid_from_the_writer(tmp_path: Path) -> None:
    import os
    import socket

    me = store_mod._writer()
    assert me["pid"] == os.getpid()
    assert store_mod.writer_alive(me["host"], me["pid"], me["start"]) is True
    assert store_mod.writer_alive(me["host"], me["pid"], "1") is False  # same pid, another process
    assert store_mod.writer_alive(me["host"], _dead_pid(), None) is False
    assert store_mod.writer_alive(socket.gethostname() + ".elsewhere", me["pid"], me["start"]) is None


def test_overwrite_is_atomic_and_journal_free_afterwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ImageStore(tmp_path / "data")
    rel = store.save("snapshots", np.full((20, 20, 3), 200, np.uint8))
    store.settle(rel)
    before = store.path(rel).read_bytes()
    _disk_full_after(monkeypatch, "snapshots", 0)
    with pytest.raises(OSError):
        store.overwrite(rel, np.zeros((20, 20, 3), np.uint8))
    assert store.path(rel).read_bytes() == before  # the old image, whole
    assert [p.name for p in store.path(rel).parent.iterdir()] == [store.path(rel).name]  # no temp file
    assert store.pending_entries() == []
