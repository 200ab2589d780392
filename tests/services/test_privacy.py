"""Consent withdrawal, erasure and retention purge: what goes, what stays, what is audited.

Each test scans the data dir and the database tables afterwards, so a leftover file or
embedding anywhere fails it (not just the ones the service was written to look at).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from trust_world import World, all_files, all_text, record_count

from aas_core.db import repo, session_scope
from aas_core.db.engine import get_engine
from aas_core.db.models import (
    AttendanceRecord,
    AuditLog,
    ClassSession,
    Enrollment,
    FaceObservation,
    FaceSample,
    Snapshot,
    Student,
    User,
)
from aas_core.services import privacy


def _audit(url: str, action: str) -> list[AuditLog]:
    with session_scope(url) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _all_blobs(url: str) -> list[bytes]:
    """Every embedding BLOB in every table that has one (raw SQL: independent of the ORM)."""
    with get_engine(url).connect() as c:
        out = []
        for table in ("face_samples", "face_observations"):
            out += [r[0] for r in c.execute(text(f"SELECT embedding FROM {table} WHERE embedding IS NOT NULL"))]
        return out


def test_withdraw_consent_deletes_samples_files_and_crops_but_keeps_attendance(world: World) -> None:
    url, store = world.url, world.store
    records_before = record_count(url, "S2")
    others_files = world.files_of["S1"] | world.files_of["S3"]
    with session_scope(url) as s:
        counts = privacy.withdraw_consent(s, store, world.users["s2"], "S2")  # the student themself
    assert counts == {"samples": 2, "sample_files": 2, "crop_files": 4, "observation_embeddings": 2}
    on_disk = all_files(store)
    assert not on_disk & world.files_of["S2"], "a file showing S2 is still on disk"
    assert others_files <= on_disk, "someone else's file was deleted"
    with session_scope(url) as s:
        st = repo.get_student(s, "S2")
        assert not st.has_consent
        assert s.scalars(select(FaceSample).where(FaceSample.student_id == st.id)).all() == []
        obs = s.scalars(select(FaceObservation).where(FaceObservation.student_id == st.id)).all()
        assert len(obs) == 2 and all(o.crop_path is None and o.enhanced_path is None and o.embedding is None
                                     for o in obs)
    assert not set(world.embeddings_of["S2"]) & set(_all_blobs(url))
    assert record_count(url, "S2") == records_before == 3  # attendance stays
    [a] = _audit(url, "consent.withdraw")
    assert (a.actor, a.target_id, a.details["samples"]) == ("s2", "S2", 2)


def test_withdrawn_student_is_left_out_of_galleries_and_can_consent_again(world: World) -> None:
    with session_scope(world.url) as s:
        privacy.withdraw_consent(s, world.store, world.users["alice"], "S1")  # instructor of S1's course
    with session_scope(world.url) as s:
        ids, _ = repo.gallery_arrays(s, repo.get_course(s, "A101"), "test:emb")
        assert "S1" not in ids and "S2" in ids
        privacy.give_consent(s, world.users["s1"], "S1")
    with session_scope(world.url) as s:
        assert repo.get_student(s, "S1").has_consent
    assert [a.actor for a in _audit(world.url, "consent.give")] == ["s1"]
    assert [a.actor for a in _audit(world.url, "consent.withdraw")] == ["alice"]


def test_erase_student_leaves_no_file_no_embedding_no_row(world: World) -> None:
    url, store = world.url, world.store
    with session_scope(url) as s:
        counts = privacy.erase_student(s, store, world.users["admin"], "S2")
    assert counts == {"samples": 2, "sample_files": 2, "crop_files": 4, "observation_embeddings": 2,
                      "snapshot_faces_redacted": 2, "attendance_records": 3, "account": 1}
    # their face is blacked out in the classroom snapshots; the other faces are not
    for key, x in (("A_old", 10), ("B_new", 0)):
        img = store.load(world.snapshot_files[world.sessions[key]])
        assert img[2:38, x + 2:x + 38].max() < 30, key
        assert img[2:38, 102:138].std() > 20  # the unknown face at x 100..140 is untouched
    on_disk = all_files(store)
    assert not on_disk & world.files_of["S2"]
    assert (world.files_of["S1"] | world.files_of["S3"]) <= on_disk
    assert not set(world.embeddings_of["S2"]) & set(_all_blobs(url))
    # other students' embeddings are untouched
    assert set(world.embeddings_of["S1"]) <= set(_all_blobs(url))
    with session_scope(url) as s:
        assert repo.find_student(s, "S2") is None
        assert s.scalar(select(User).where(User.username == "s2")) is None
        assert s.scalars(select(Enrollment)).all() and all(
            e.student.student_number != "S2" for e in s.scalars(select(Enrollment)))
        assert all(r.student.student_number != "S2" for r in s.scalars(select(AttendanceRecord)))
        for o in s.scalars(select(FaceObservation)):
            assert not any(m[0] == "S2" for m in (o.top_matches or []))
    everything = all_text(url)
    assert "Student S2" not in everything and "s2@school.test" not in everything
    [a] = _audit(url, "student.erase")
    # the student number is pseudonymised too (test_consent_effects.py checks every trace of it)
    assert (a.actor, a.target_type) == ("root-admin", "student") and a.target_id.startswith("erased:")
    assert "Student S2" not in repr(a.details)
    assert record_count(url, "S1") == 2  # the others' attendance stays


def test_purge_removes_old_snapshots_and_crops_keeps_records(world: World) -> None:
    url, store = world.url, world.store
    old, new = world.sessions["A_old"], world.sessions["A_new"]
    records_before = record_count(url)
    with session_scope(url) as s:
        old_crops = {p for o in s.scalars(select(FaceObservation).join(Snapshot).where(Snapshot.session_id == old))
                     for p in (o.crop_path, o.enhanced_path) if p}
    assert len(old_crops) == 4  # S1, S2 (+ enhanced), unknown
    with pytest.raises(ValueError):
        with session_scope(url) as s:
            privacy.purge_old_media(s, store, world.users["admin"], 0)
    with session_scope(url) as s:
        counts = privacy.purge_old_media(s, store, world.users["admin"], 30)
    assert counts == {"sessions": 1, "snapshot_files": 1, "crop_files": 4, "observation_embeddings": 3}
    on_disk = all_files(store)
    assert world.snapshot_files[old] not in on_disk and not old_crops & on_disk
    assert world.snapshot_files[new] in on_disk and world.snapshot_files[world.sessions["B_new"]] in on_disk
    with session_scope(url) as s:
        snap = s.scalar(select(Snapshot).where(Snapshot.session_id == old))
        assert snap.image_path is None and snap.status.value == "processed"
        assert all(o.crop_path is None and o.enhanced_path is None and o.embedding is None
                   for o in snap.observations)
        assert sum(o.student_id is not None for o in snap.observations) == 2  # who was seen stays
        new_snap = s.scalar(select(Snapshot).where(Snapshot.session_id == new))
        assert all(o.crop_path and o.embedding for o in new_snap.observations)
        assert s.get(ClassSession, old) is not None
    assert record_count(url) == records_before
    # a second purge finds nothing more to delete, and each run is audited
    with session_scope(url) as s:
        again = privacy.purge_old_media(s, store, world.users["admin"], 30)
    assert again == {"sessions": 1, "snapshot_files": 0, "crop_files": 0, "observation_embeddings": 0}
    audits = _audit(url, "media.purge")
    assert [a.details["snapshot_files"] for a in audits] == [1, 0] and audits[0].target_id == "30"


def test_purge_age_is_by_session_start(world: World) -> None:
    with session_scope(world.url) as s:
        sess = s.get(ClassSession, world.sessions["B_new"])
        sess.started_at = sess.started_at - timedelta(days=10)
    with session_scope(world.url) as s:
        assert privacy.purge_old_media(s, world.store, world.users["admin"], 30)["sessions"] == 1
    with session_scope(world.url) as s:
        assert privacy.purge_old_media(s, world.store, world.users["admin"], 5)["sessions"] == 2
    assert world.snapshot_files[world.sessions["A_new"]] in all_files(world.store)


def test_failed_erase_rolls_back_rows(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are all-or-nothing: an error in the middle leaves the student in the database."""
    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(repo, "audit", boom)
    with pytest.raises(RuntimeError):
        with session_scope(world.url) as s:
            privacy.erase_student(s, world.store, world.users["admin"], "S3")
    with session_scope(world.url) as s:
        st = repo.get_student(s, "S3")
        assert s.scalars(select(FaceSample).where(FaceSample.student_id == st.id)).all()
    assert record_count(world.url, "S3") == 1
    # files were deleted before the failed commit (the safe direction); a retry finishes the job
    monkeypatch.undo()
    with session_scope(world.url) as s:
        counts = privacy.erase_student(s, world.store, world.users["admin"], "S3")
    assert counts["samples"] == 2 and not all_files(world.store) & world.files_of["S3"]
    with session_scope(world.url) as s:
        assert s.scalar(select(Student).where(Student.student_number == "S3")) is None


def test_sweep_deletes_only_old_unreferenced_media(world: World) -> None:
    import os
    import time

    import numpy as np

    store = world.store
    old_orphan = store.save("crops", np.zeros((20, 20, 3), np.uint8))
    young_orphan = store.save("samples", np.zeros((20, 20, 3), np.uint8))
    db_like = store.root / "aas.db"  # the default SQLite database lives in the data dir: never touched
    db_like.write_bytes(b"SQLite format 3\x00")
    past = time.time() - 7200
    for p in [store.path(old_orphan), db_like, *(store.path(f) for fs in world.files_of.values() for f in fs)]:
        os.utime(p, (past, past))
    with session_scope(world.url) as s:
        assert privacy.sweep_orphan_files(s, store, world.users["admin"], dry_run=True) == [old_orphan]
        with pytest.raises(privacy.AccessDenied):
            privacy.sweep_orphan_files(s, store, world.users["alice"])
    assert store.path(old_orphan).is_file()
    with session_scope(world.url) as s:
        assert privacy.sweep_orphan_files(s, store, world.users["admin"]) == [old_orphan]
    on_disk = all_files(store)
    assert old_orphan not in on_disk and young_orphan in on_disk and db_like.is_file()
    assert all(f in on_disk for fs in world.files_of.values() for f in fs)
    assert [a.details for a in _audit(world.url, "media.sweep")] == [{"files": 1, "dry_run": True},
                                                                     {"files": 1, "dry_run": False}]
