"""Gallery poisoning at enrollment (issue 10, points 3 and 5) on SQLite and the real MariaDB.

Real photos (faces_dev) through the real 'fast' pipeline: a student who uploads a classmate's
face, a copy of a stored photo, their own first photos; the instructor's review; consent
withdrawn while photos are being enrolled. The school is ``trust_world``'s: alice teaches A101
(S1, S2), bob teaches B202 (S2, S3); S1 and S2 have student accounts.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from trust_world import World, all_files

from aas_core.config import Settings
from aas_core.db import session_scope
from aas_core.db.models import AuditLog, FaceSample, SampleStatus, Student
from aas_core.media.decode import decode_image
from aas_core.services import enrollment, privacy
from aas_core.services import students as svc
from aas_core.services.auth import AccessDenied

PUTIN, POWELL, OBAMA = "lfw_Vladimir_Putin", "lfw_Colin_Powell", "glint_Barack_Obama"


def photo(data_dir: Path, person: str, i: int) -> tuple[str, np.ndarray]:
    p = data_dir / "faces_dev" / person / f"{i}.jpg"
    return f"{person}_{i}.jpg", decode_image(p.read_bytes(), name=p.name)


def rows(url: str, sn: str, model: str) -> list[FaceSample]:
    with session_scope(url) as s:
        return list(s.scalars(select(FaceSample).join(Student).where(Student.student_number == sn,
                                                                    FaceSample.model_name == model)
                              .order_by(FaceSample.id)))


@pytest.fixture
def cfg(world: World, models_dir: Path) -> Settings:
    return Settings(data_dir=world.store.root, models_dir=models_dir, database_url=world.url)


def test_a_classmates_face_is_held_and_never_matched_as_the_uploader(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path) -> None:
    u, model = world.users, fast_pipeline.embedder.name
    # The instructor enrolls S2 (Putin's face) and S1 (Powell's face): both count at once.
    s2 = svc.enroll_photos(world.url, u["alice"], "S2", [photo(data_dir, PUTIN, i) for i in (1, 2, 3)],
                           fast_pipeline, world.store, cfg)
    assert [o.status for o in s2] == ["accepted"] * 3, [o.line() for o in s2]
    # S1, signed in as a student, uploads two photos of S2 and one of a stranger.
    out = svc.enroll_photos(world.url, u["s1"], "S1", [photo(data_dir, PUTIN, 4), photo(data_dir, PUTIN, 5)],
                            fast_pipeline, world.store, cfg)
    assert [o.status for o in out] == ["pending", "pending"], [o.line() for o in out]
    for o in out:
        assert "looks more like another enrolled student" in o.reasons[0]
        assert "S2" not in o.line() and "Student S2" not in o.line()  # the other student is never named
    held = [x for x in rows(world.url, "S1", model) if x.status == SampleStatus.PENDING]
    assert len(held) == 2 and all(not x.accepted and x.added_by == "student" for x in held)
    assert all("another enrolled student" in (x.reject_reason or "") for x in held)

    # Once S1 has accepted photos of their own, a photo of someone else is held as "not like this student".
    mine = svc.enroll_photos(world.url, u["alice"], "S1", [photo(data_dir, POWELL, 1)], fast_pipeline, world.store,
                             cfg)
    assert mine[0].status == "accepted", mine[0].line()
    [stranger] = svc.enroll_photos(world.url, u["s1"], "S1", [photo(data_dir, OBAMA, 1)], fast_pipeline,
                                   world.store, cfg)
    assert stranger.status == "pending"
    assert stranger.reasons[0].startswith("does not look like this student's accepted photos (similarity ")
    assert "< 0.42)" in stranger.reasons[0]
    [again] = svc.enroll_photos(world.url, u["s1"], "S1", [photo(data_dir, PUTIN, 6)], fast_pipeline,
                                world.store, cfg)
    assert again.status == "pending" and "looks more like another enrolled student" in again.reasons[0]

    # Held photos are in no gallery: a session of A101 can match that face only as S2.
    with session_scope(world.url) as s:
        ids, emb = privacy.course_gallery(s, u["alice"], "A101", model)
    assert ids.count("S1") == 1 and ids.count("S2") == 3  # S1: only the instructor's photo
    probe = fast_pipeline.embedder.embed(*_face(fast_pipeline, cfg, photo(data_dir, PUTIN, 4)[1]))
    best = ids[int(np.argmax(emb @ (probe[0] / np.linalg.norm(probe[0]))))]
    assert best == "S2"


def _face(pipeline, cfg: Settings, image: np.ndarray):  # type: ignore[no-untyped-def]
    face, _, _ = enrollment.find_enrollment_face(image, pipeline, cfg)
    return image, face


def test_copies_of_a_stored_photo_are_refused_and_a_new_photo_is_accepted(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path) -> None:
    u, model = world.users, fast_pipeline.embedder.name
    name, first = photo(data_dir, POWELL, 1)
    [o] = svc.enroll_photos(world.url, u["admin"], "S3", [(name, first)], fast_pipeline, world.store, cfg)
    assert o.accepted
    files = all_files(world.store)
    # the same file again, for the same student and for another one
    [same] = svc.enroll_photos(world.url, u["admin"], "S3", [(name, first)], fast_pipeline, world.store, cfg)
    assert same.status == "rejected" and "duplicate" in same.reasons[0] and "this student" in same.reasons[0]
    # a resized, re-encoded copy, uploaded for someone else
    buf = io.BytesIO()
    Image.fromarray(cv2.cvtColor(first, cv2.COLOR_BGR2RGB)).resize((170, 170), Image.BICUBIC).save(
        buf, format="JPEG", quality=70)
    copy = decode_image(buf.getvalue(), name="copy.jpg")
    [dup] = svc.enroll_photos(world.url, u["bob"], "S2", [("copy.jpg", copy)], fast_pipeline, world.store, cfg)
    assert dup.status == "rejected" and "another student" in dup.reasons[0]
    assert all_files(world.store) == files  # refused copies are not stored
    assert len(rows(world.url, "S3", model)) == 1 and rows(world.url, "S2", model) == []
    # a genuine new photo of the same person is accepted
    [new] = svc.enroll_photos(world.url, u["admin"], "S3", [photo(data_dir, POWELL, 2)], fast_pipeline,
                              world.store, cfg)
    assert new.status == "accepted", new.line()
    assert [x.status for x in rows(world.url, "S3", model)] == ["accepted", "accepted"]
    assert all(x.content_sha256 and x.phash for x in rows(world.url, "S3", model))


def test_a_students_first_photos_wait_for_the_instructor(world: World, cfg: Settings, fast_pipeline,
                                                         data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    u, model = world.users, fast_pipeline.embedder.name
    out = svc.enroll_photos(world.url, u["s1"], "S1", [photo(data_dir, POWELL, i) for i in (1, 2)], fast_pipeline,
                            world.store, cfg)
    assert [o.status for o in out] == ["pending", "pending"]
    assert out[0].reasons == [enrollment.FIRST_PHOTOS_HELD]
    with session_scope(world.url) as s:
        assert privacy.course_gallery(s, u["alice"], "A101", model)[0] == []  # not used yet
    first, second = (o.sample_id for o in out)

    # who may see and review them
    assert [p.id for p in svc.pending_samples(world.url, u["alice"], "A101")] == [first, second]
    assert [p.id for p in svc.pending_samples(world.url, u["alice"])] == [first, second]
    assert svc.pending_samples(world.url, u["bob"]) == []  # S1 is not on bob's course
    for who, call in (("bob", lambda w: svc.pending_samples(world.url, w, "A101")),
                      ("s1", lambda w: svc.pending_samples(world.url, w, "A101")),
                      ("bob", lambda w: svc.review_sample(world.url, world.store, w, first, accept=True)),
                      ("s1", lambda w: svc.review_sample(world.url, world.store, w, first, accept=True))):
        with pytest.raises(AccessDenied):
            call(u[who])
    assert [x.status for x in rows(world.url, "S1", model)] == ["pending", "pending"]

    # alice accepts one and rejects the other (a rejection needs a reason)
    assert svc.review_sample(world.url, world.store, u["alice"], first, accept=True) == "accepted"
    with pytest.raises(ValueError, match="reason"):
        svc.review_sample(world.url, world.store, u["alice"], second, accept=False, reason=" ")
    with pytest.raises(ValueError, match="not pending"):
        svc.review_sample(world.url, world.store, u["alice"], first, accept=False, reason="changed my mind")
    rejected_file = rows(world.url, "S1", model)[1].image_path
    assert svc.review_sample(world.url, world.store, u["alice"], second, accept=False,
                             reason="not a photo of S1") == "rejected"
    a, b = rows(world.url, "S1", model)
    assert (a.status, a.accepted, b.status, b.accepted) == ("accepted", True, "rejected", False)
    assert b.reject_reason == "not a photo of S1" and b.image_path is None and b.embedding is None
    assert not world.store.path(rejected_file).exists()
    with session_scope(world.url) as s:
        assert privacy.course_gallery(s, u["alice"], "A101", model)[0] == ["S1"]
        audit = {(x.action, x.actor, x.details["sample"]) for x in s.scalars(select(AuditLog))
                 if x.action.startswith("sample.")}
    assert audit == {("sample.accept", "alice", first), ("sample.reject", "alice", second)}
    detail = svc.student_detail(world.url, u["s1"], "S1")  # the student sees why
    assert [x.reason for x in detail.rejected] == ["not a photo of S1"]
    assert svc.pending_samples(world.url, u["alice"]) == []

    # with an accepted photo of their own, the student's next genuine photo counts at once
    [more] = svc.enroll_photos(world.url, u["s1"], "S1", [photo(data_dir, POWELL, 3)], fast_pipeline, world.store,
                               cfg)
    assert more.status == "accepted", more.line()


def test_consent_withdrawn_while_enrolling_leaves_nothing(world: World, cfg: Settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The withdrawal commits (from another connection) after the photo was embedded and before it
    is stored: the enrollment stores nothing, no row and no file."""
    from fake_vision import FakePipeline, scene

    u, pipe = world.users, FakePipeline()
    real = enrollment.assess_and_embed

    def embed_then_withdraw(*a, **k):  # type: ignore[no-untyped-def]
        out = real(*a, **k)
        svc.withdraw_consent(world.url, world.store, u["admin"], "S1")
        return out

    monkeypatch.setattr(enrollment, "assess_and_embed", embed_then_withdraw)
    before = all_files(world.store)
    with pytest.raises(enrollment.ConsentWithdrawn):
        svc.enroll_photos(world.url, u["admin"], "S1", [("a.png", scene({0}))], pipe, world.store, cfg)
    with session_scope(world.url) as s:
        st = s.scalar(select(Student).where(Student.student_number == "S1"))
        assert st.consent_given_at is None
        assert s.scalars(select(FaceSample).where(FaceSample.student_id == st.id)).all() == []
    assert all_files(world.store) <= before  # the withdrawal deleted S1's files; nothing new appeared
