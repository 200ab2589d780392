"""The faster snapshot path keeps the storage guarantees: a batch of crops fsynced together is
journaled before any byte and fsynced before any rename; a failing fsync fails the whole batch
and the snapshot; observation rows go in one statement, with the usual length check; the
review's snapshot images are drawn at display size.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import numpy as np
import pytest
from fake_vision import scene
from sqlalchemy import event, select
from test_storage_faults import FULL_CLASS, _leftovers

import aas_core.media.store as store_mod
from aas_core.db import get_engine, session_scope
from aas_core.db.limits import FieldTooLong
from aas_core.db.models import FaceObservation, Snapshot, SnapshotStatus
from aas_core.media import draw
from aas_core.media.store import ImageStore
from aas_core.services import observations
from aas_core.services.sessions import SessionService, StorageFailed


@pytest.fixture
def env(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    from test_db_faults import _school_env

    return _school_env(db_url, tmp_path)


def test_a_batch_is_journaled_before_writing_and_fsynced_before_any_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ImageStore(tmp_path / "data")
    real_write, real_fsync = store_mod._write_file, store_mod._fsync_file
    written: list[Path] = []
    synced: list[tuple[Path, str, bool]] = []

    def write(path: Path, data: bytes) -> None:
        if store_mod.PENDING_DIR not in path.parts:
            final = path.with_name(path.name.removesuffix(".part")).relative_to(store.root).as_posix()
            assert any(final in e.paths and e.alive for e in store.pending_entries())  # journaled first
            written.append(path)
        real_write(path, data)

    def fsync(path: Path) -> None:
        final = path.with_name(path.name.removesuffix(".part"))
        synced.append((path, threading.current_thread().name, final.exists()))
        real_fsync(path)

    monkeypatch.setattr(store_mod, "_write_file", write)
    monkeypatch.setattr(store_mod, "_fsync_file", fsync)
    images = [np.full((40 + k, 30, 3), 10 * k, np.uint8) for k in range(12)]
    rels = store.save_many("crops", [*images[:6], None, *images[6:]])
    assert rels[6] is None and all(rels[k] for k in range(13) if k != 6)
    image_syncs = [x for x in synced if store_mod.PENDING_DIR not in x[0].parts]
    assert sorted(p for p, _, _ in image_syncs) == sorted(written) and len(written) == 12
    assert not any(renamed for _, _, renamed in image_syncs)  # no final name before its bytes are on disk
    assert any(t.startswith("aas-store") for _, t, _ in image_syncs)  # fsynced by the pool
    for rel, img in zip([r for r in rels if r], images):
        assert store.load(rel).shape == img.shape
    assert not list((store.root / "crops").rglob("*.part"))


def test_a_failing_fsync_fails_the_batch_and_the_snapshot(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    snap_id = svc.store_snapshot(sid, 0, scene(FULL_CLASS))
    real = store_mod._fsync_file
    calls: list[Path] = []
    lock = threading.Lock()

    def fsync(path: Path) -> None:
        if "/crops/" in path.as_posix():
            with lock:
                calls.append(path)
                n = len(calls)
            if n == 3:  # an I/O error while the batch's files are flushed (in a pool thread)
                raise OSError(errno.EIO, "Input/output error", str(path))
        real(path)

    monkeypatch.setattr(store_mod, "_fsync_file", fsync)
    with pytest.raises(StorageFailed) as err:
        svc.process_snapshot(snap_id)
    assert "Input/output error" in str(err.value)
    assert len(calls) == len(FULL_CLASS)  # every fsync of the batch ran to the end before the clean-up
    assert _leftovers(store, "crops") == []  # no crop, no temp file, no journal entry
    with session_scope(url) as s:
        snap = s.get(Snapshot, snap_id)
        assert snap.status == SnapshotStatus.FAILED and "Input/output error" in snap.error
        assert snap.observations == []


def test_observation_rows_are_inserted_in_one_statement(env) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = env
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    snap_id = svc.store_snapshot(sid, 0, scene(FULL_CLASS))
    inserts: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO FACE_OBSERVATIONS"):
            inserts.append(statement)

    event.listen(get_engine(url), "before_cursor_execute", seen)
    try:
        result = svc.process_snapshot(snap_id)
    finally:
        event.remove(get_engine(url), "before_cursor_execute", seen)
    assert len(result) == len(FULL_CLASS) and len(inserts) == 1
    with session_scope(url) as s:
        rows = s.scalars(select(FaceObservation).where(FaceObservation.snapshot_id == snap_id)
                         .order_by(FaceObservation.id)).all()
        assert len(rows) == len(FULL_CLASS)
        assert [round(r.x1) for r in rows] == [round(float(b[0])) for b in result.faces.xyxy]  # face order kept
        assert all(r.crop_path and store.path(r.crop_path).is_file() and r.embedding for r in rows)
        named = [r for r in rows if r.student_id is not None]
        assert named and all(r.match_source == "threshold" and r.similarity is not None for r in named)
    again = svc.process_snapshot(snap_id)  # re-processing replaces the rows (and their crops)
    with session_scope(url) as s:
        assert len(s.scalars(select(FaceObservation).where(FaceObservation.snapshot_id == snap_id)).all()) == len(again)


def test_insert_rows_checks_text_lengths_like_a_flush(env) -> None:  # type: ignore[no-untyped-def]
    url, *_ = env
    row = FaceObservation(x1=0, y1=0, x2=1, y2=1, det_score=0.9, source="x" * 21)
    with pytest.raises(FieldTooLong, match="source"), session_scope(url) as s:
        observations.insert_rows(s, 1, [row])


def test_display_drawing_fits_and_scales_the_boxes() -> None:
    img = np.zeros((1080, 1920, 3), np.uint8)
    full = draw.draw_observations(img, [(960, 540, 1060, 640)], ["a"], [True])
    assert full.shape == img.shape and img.max() == 0  # the input is never drawn on
    small = draw.draw_observations(img, [(960, 540, 1060, 640)], ["a"], [True], max_side=draw.DISPLAY_MAX_SIDE)
    assert small.shape == (810, 1440, 3)
    ys, xs = np.nonzero(small[..., 1] == draw.GREEN[1])
    assert abs(xs.max() - 1060 * 0.75) <= 3 and abs(ys.max() - 640 * 0.75) <= 3  # the box scaled with the image
    tiny = np.zeros((100, 200, 3), np.uint8)
    assert draw.draw_observations(tiny, [], [], [], max_side=draw.DISPLAY_MAX_SIDE).shape == tiny.shape  # never upscaled
