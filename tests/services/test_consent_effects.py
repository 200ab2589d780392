"""What a consent withdrawal or an erasure does to data written around it, on both databases:

* snapshots processed after it during a camera session (no crop, no embedding, face blacked out),
* an enrollment racing it (nothing of theirs left, rows or files),
* every trace of an erased student with a non-ASCII id (rows, JSON, audit text, file names),
* the cached session review (no crop of theirs after the change).

The vision pipeline is ``fake_vision`` (these tests are about the data, not about vision).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fake_vision import SEAT, TOP, PATCH, FakePipeline, scene, seat_vector
from sqlalchemy import event, select
from trust_world import all_text

from aas_core.config import Settings
from aas_core.db import init_db, repo, session_scope
from aas_core.db.embeddings import from_blob, to_blob
from aas_core.db.models import AttendanceRecord, AuditLog, FaceObservation, FaceSample, Role, Snapshot, Student
from aas_core.media.store import ImageStore, discard_on_rollback
from aas_core.services import privacy
from aas_core.services.auth import AuthUser, create_user, to_auth_user
from aas_core.services.enrollment import enroll_images
from aas_core.services.sessions import SessionService

ADMIN = AuthUser(0, "root", Role.ADMIN)
ROSTER = {"A1": 0, "A2": 1, "A3": 2}  # student -> seat


def _school(url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path / "data")
    pipe = FakePipeline()
    settings = Settings(data_dir=tmp_path / "data", database_url="sqlite://")
    init_db(url)
    with session_scope(url) as s:
        course = repo.add_course(s, "A101", "A101")
        for sn, seat in ROSTER.items():
            st = repo.add_student(s, sn, f"Student {sn}", consent=True)
            repo.enroll_in_course(s, course, st)
            [o] = enroll_images(s, st, [(f"{sn}.png", scene({seat}))], pipe, store, settings)
            assert o.accepted, o.reasons
    return store, pipe, settings


@pytest.fixture
def school(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return (db_url, *_school(db_url, tmp_path))


# --- (4) a camera session goes on after a withdrawal / erasure -------------------------------------------

@pytest.mark.parametrize("change", ["withdraw", "erase"])
def test_faces_of_a_student_whose_consent_went_mid_session_are_withheld_and_blacked_out(school, change) -> None:  # type: ignore[no-untyped-def]
    """Snapshot 2 comes after the change: A1's face there has no crop, no embedding, no match, no
    top-match entry, and is black in the stored snapshot; the others are stored as usual."""
    from aas_core.capture import ImageSequenceCamera
    from aas_core.domain.course_config import SessionPlan
    from aas_core.services.camera_session import CameraSession

    url, store, pipe, settings = school

    def on_event(kind: str, info: dict) -> None:
        if kind == "processed" and info["index"] == 0:  # worker thread, before snapshot 2 is processed
            with session_scope(url) as s:
                if change == "withdraw":
                    privacy.withdraw_consent(s, store, ADMIN, "A1")
                else:
                    privacy.erase_student(s, store, ADMIN, "A1")

    run = CameraSession(SessionService(url, store, pipe, settings),
                        ImageSequenceCamera([scene(set(ROSTER.values()))] * 2, name="cam"),
                        SessionPlan.for_camera([0.0, 0.5], "cam"), course_code="A101", camera_name="cam",
                        settle_s=0.0, on_event=on_event)
    run.start()
    assert run.wait(60) is not None
    a1 = seat_vector(ROSTER["A1"])
    x1 = ROSTER["A1"] * SEAT + 6
    with session_scope(url) as s:
        snap = s.scalar(select(Snapshot).where(Snapshot.session_id == run.session_id, Snapshot.index == 1))
        obs = sorted(snap.observations, key=lambda o: o.x1)
        assert len(obs) == 3  # the face is still counted (a box), nothing else of it is kept
        for o in obs:
            emb = from_blob(o.embedding) if o.embedding is not None else None
            assert emb is None or not np.allclose(emb, a1, atol=1e-5), "A1's embedding was stored"
            assert not any(m[0] == "A1" for m in (o.top_matches or []))
        withheld = obs[0]
        assert abs(withheld.x1 - x1) < 1
        assert (withheld.crop_path, withheld.enhanced_path, withheld.embedding, withheld.student_id,
                withheld.top_matches) == (None, None, None, None, None)
        others = obs[1:]
        assert all(o.crop_path and o.embedding is not None and o.student_id is not None for o in others)
        crops = {p for o in snap.observations for p in (o.crop_path, o.enhanced_path) if p}
        image_path = snap.image_path
    img = store.load(image_path)
    assert img[TOP:TOP + PATCH, x1:x1 + PATCH].max() < 30, "A1's face is visible in the stored snapshot 2"
    x2 = ROSTER["A2"] * SEAT + 6
    assert img[TOP:TOP + PATCH, x2 + 14:x2 + PATCH].std() > 20  # the neighbour's face is not
    for rel in crops:  # no stored crop shows A1 either
        crop = store.load(rel)
        assert crop.std() > 20


# --- (5) withdrawal / erasure racing an enrollment ----------------------------------------------------

def _enroll_under_lock(url: str, store: ImageStore, sn: str, out: dict) -> None:
    """An enrollment as it must be written: consent re-checked under the student row lock, the file
    discarded if its row does not commit."""
    try:
        with session_scope(url) as t:
            st = t.scalar(select(Student).where(Student.student_number == sn).with_for_update())
            if st is None or not st.has_consent:
                out["refused"] = True
                return
            rel = store.save("samples", scene({ROSTER[sn]}))
            out["file"] = rel
            discard_on_rollback(t, store, rel)
            t.add(FaceSample(student_id=st.id, image_path=rel, model_name=FakePipeline().embedder.name,
                             embedding=to_blob(seat_vector(ROSTER[sn])), face_px=48.0, blur=50.0, det_score=0.99))
        out["committed"] = True
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out["error"] = exc


@pytest.mark.parametrize("change", ["withdraw", "erase"])
def test_an_enrollment_committed_during_a_withdrawal_or_erasure_leaves_nothing(school, change) -> None:  # type: ignore[no-untyped-def]
    """A second connection enrolls a photo after the change has read the student and before it
    commits (at its first write). Afterwards no sample row or file of the student exists."""
    url, store, _pipe, _settings = school
    out: dict = {}

    def concurrent_enrollment(session, *_a) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=_enroll_under_lock, args=(url, store, "A1", out))
        t.start()
        t.join(1.5)  # it commits now, or waits for this transaction's lock (it is the same either way)
        out["thread"] = t

    with session_scope(url) as s:
        event.listen(s, "before_flush", concurrent_enrollment, once=True)
        if change == "withdraw":
            privacy.withdraw_consent(s, store, ADMIN, "A1")
        else:
            privacy.erase_student(s, store, ADMIN, "A1")
    out["thread"].join(30)
    assert "error" not in out or change == "erase", out  # (an erased student can fail the FK instead)
    assert out.get("file") is None or not store.path(out["file"]).exists(), "the racing sample's file is left"
    with session_scope(url) as s:
        st = repo.find_student(s, "A1")
        if st is not None:
            assert s.scalars(select(FaceSample).where(FaceSample.student_id == st.id)).all() == []
        vec = to_blob(seat_vector(ROSTER["A1"]))
        assert vec not in set(s.scalars(select(FaceSample.embedding)))


def test_a_sample_and_a_crop_committed_just_after_a_withdrawal_are_swept(school) -> None:  # type: ignore[no-untyped-def]
    """Writers that read consent before the withdrawal and commit right after it (an enrollment,
    a camera session matching with its older gallery): the sweep after the commit removes both."""
    url, store, pipe, settings = school
    svc = SessionService(url, store, pipe, settings)
    sid = svc.start("A101")
    snap_id = svc.store_snapshot(sid, 0, scene({0}))
    late: dict[str, str] = {}

    def late_writers(_session) -> None:  # type: ignore[no-untyped-def]
        with session_scope(url) as t:
            st = repo.get_student(t, "A1")
            late["sample"] = store.save("samples", scene({0}))
            t.add(FaceSample(student_id=st.id, image_path=late["sample"], model_name=pipe.embedder.name,
                             embedding=to_blob(seat_vector(0)), face_px=48.0, blur=50.0, det_score=0.99))
            late["crop"] = store.save("crops", scene({0}))
            t.add(FaceObservation(snapshot_id=snap_id, x1=6, y1=TOP, x2=54, y2=TOP + PATCH, det_score=0.99,
                                  crop_path=late["crop"], model_name=pipe.embedder.name,
                                  embedding=to_blob(seat_vector(0)), student_id=st.id, similarity=0.99,
                                  match_source="threshold", top_matches=[["A1", 0.99]]))

    with session_scope(url) as s:
        event.listen(s, "after_commit", late_writers, once=True)  # runs before the service's own sweep
        privacy.withdraw_consent(s, store, ADMIN, "A1")
    assert not store.path(late["sample"]).exists() and not store.path(late["crop"]).exists()
    with session_scope(url) as s:
        st = repo.get_student(s, "A1")
        assert s.scalars(select(FaceSample).where(FaceSample.student_id == st.id)).all() == []
        o = s.scalar(select(FaceObservation).where(FaceObservation.snapshot_id == snap_id))
        assert o.crop_path is None and o.embedding is None


# --- (6) erasure of a student with a non-ASCII id leaves no trace -------------------------------------

def _forms(value: str) -> set[str]:
    """The value as stored in plain text and inside ASCII-escaped JSON."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


@pytest.mark.parametrize(("number", "name", "username"),
                         [("stü-ñ42", "Jürgen Ñúñez", "jürgen.ñ"), ("学生-7", "王小明", "xiaoming王")])
def test_erasing_a_student_with_a_non_ascii_id_leaves_no_trace(school, number: str, name: str,
                                                                username: str) -> None:  # type: ignore[no-untyped-def]
    url, store, pipe, settings = school
    reason = "Arzttermin am Dienstag, Attest liegt vor"
    with session_scope(url) as s:
        st = repo.add_student(s, number, name, email="x@school.test", actor="root")
        course = repo.get_course(s, "A101")
        repo.enroll_in_course(s, course, st, actor="root")
        account = create_user(s, username, "plum-orbit-lantern-42", "student", student_number=number)
        s.flush()
        me = to_auth_user(s, account)
        privacy.give_consent(s, me, number)  # audited with their username as the actor
        [o] = enroll_images(s, st, [("me.png", scene({5}))], pipe, store, settings, actor=username)
        assert o.accepted
    svc = SessionService(url, store, pipe, settings)
    outcome = svc.run_from_images("A101", [scene({0, 5}), scene({0, 1, 5}), scene({5})])
    assert outcome.statuses[number] == "attended"
    with session_scope(url) as s:
        rec = s.scalar(select(AttendanceRecord).join(Student, AttendanceRecord.student_id == Student.id)
                       .where(Student.student_number == number, AttendanceRecord.session_id == outcome.session_id))
        repo.override_status(s, rec, "late", "root", reason)
        tops = [o.top_matches for o in s.scalars(select(FaceObservation)) if o.top_matches]
        assert any(m[0] == number for t in tops for m in t)  # other faces list them as a candidate
    with session_scope(url) as s:
        privacy.erase_student(s, store, ADMIN, number)

    everything = all_text(url)
    for secret in (number, name, username, reason):
        for form in _forms(secret):
            assert form not in everything, f"{form!r} is still in the database"
    for f in store.root.rglob("*"):
        assert not any(form in f.name for secret in (number, name, username) for form in _forms(secret))
    with session_scope(url) as s:
        [erase] = s.scalars(select(AuditLog).where(AuditLog.action == "student.erase")).all()
        pseudonym = erase.target_id
        assert pseudonym.startswith("erased:")
        about = s.scalars(select(AuditLog).where(AuditLog.target_id == pseudonym)).all()
        # the same pseudonym in every entry that was about them: create, roster, consent, enroll, account
        assert {"student.create", "consent.give", "enroll", "user.create", "student.erase"} <= {a.action for a in about}
        assert any(a.actor == pseudonym for a in about)  # they gave consent themselves
        overrides = s.scalars(select(AuditLog).where(AuditLog.action == "attendance.override")).all()
        assert overrides and all("reason" not in (a.details or {}) for a in overrides)
        # other students' entries are untouched
        assert s.scalar(select(AuditLog).where(AuditLog.target_id == "A2", AuditLog.action == "student.create"))


# --- (7) the cached review after a withdrawal -----------------------------------------------------------

def test_the_cached_review_shows_no_crop_of_a_student_after_their_withdrawal(school) -> None:  # type: ignore[no-untyped-def]
    from aas_core.services.review import review_fingerprint

    url, store, pipe, settings = school
    sid = SessionService(url, store, pipe, settings).run_from_images(
        "A101", [scene({0, 1, 2}), scene({0, 1, 2}), scene({0, 1, 2})]).session_id
    before = review_fingerprint(url, sid)
    with session_scope(url) as s:
        privacy.withdraw_consent(s, store, ADMIN, "A3")
    assert review_fingerprint(url, sid) != before  # the key of every cached review of this session

    from aas_core.ui.resources import session_review

    def crops_of(sn: str) -> list:
        review = session_review(url, store, ADMIN, sid)
        row = next(r for r in review.rows if r.student_number == sn)
        return [ev.crop for ev in row.evidence if ev.crop is not None]

    assert len(crops_of("A1")) == 3 and len(crops_of("A2")) == 3
    with session_scope(url) as s:
        privacy.withdraw_consent(s, store, ADMIN, "A1")
    assert crops_of("A1") == []  # not the cached entry from before the withdrawal
    assert len(crops_of("A2")) == 3
