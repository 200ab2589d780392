"""The Students page's services (``services.students``) on SQLite and the real MariaDB.

The school of ``trust_world``: alice teaches A101 (S1, S2), bob teaches B202 (S2, S3); S1 and
S2 have accounts. Every refusal must happen before anything is read or written.
"""

from __future__ import annotations

import numpy as np
import pytest
from fake_vision import FakePipeline, scene
from sqlalchemy import select
from trust_world import World

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import FaceSample, Student
from aas_core.services import enrollment
from aas_core.services import students as svc
from aas_core.services.auth import AccessDenied


def _sample_ids(url: str, sn: str) -> list[int]:
    with session_scope(url) as s:
        return list(s.scalars(select(FaceSample.id).join(Student).where(Student.student_number == sn)
                              .order_by(FaceSample.id)))


def _exists(url: str, sn: str) -> bool:
    with session_scope(url) as s:
        return repo.find_student(s, sn) is not None


def _consent(url: str, sn: str) -> bool:
    with session_scope(url) as s:
        return repo.get_student(s, sn).has_consent


# --- who is listed ------------------------------------------------------------------------------

def test_visible_students_follow_the_roles(world: World) -> None:
    u = world.users
    admin = svc.visible_students(world.url, u["admin"])
    assert admin.numbers == ["S1", "S2", "S3"] and admin.course_codes == ["A101", "B202"]
    assert {r["student_id"]: r["courses"] for r in admin.rows}["S2"] == "A101, B202"

    alice = svc.visible_students(world.url, u["alice"])
    assert alice.numbers == ["S1", "S2"] and alice.course_codes == ["A101"]
    rows = {r["student_id"]: r for r in alice.rows}
    assert rows["S2"]["courses"] == "A101", "another instructor's course is shown"
    assert rows["S1"] == {"student_id": "S1", "name": "Student S1", "email": "s1@school.test", "courses": "A101",
                          "consent": True, "samples": 2, "held": 0}

    assert svc.visible_students(world.url, u["bob"]).numbers == ["S2", "S3"]

    me = svc.visible_students(world.url, u["s1"])
    assert me.numbers == ["S1"] and me.course_codes == [] and [r["student_id"] for r in me.rows] == ["S1"]
    assert me.rows[0]["courses"] == "A101"


def test_student_detail_is_access_checked(world: World) -> None:
    u = world.users
    d = svc.student_detail(world.url, u["alice"], "S1")
    assert (d.student_number, d.name, d.has_consent) == ("S1", "Student S1", True) and d.consent_given_at
    assert [x.id for x in d.samples] == _sample_ids(world.url, "S1") and len(d.photos) == 2
    assert len(svc.student_detail(world.url, u["s1"], "S1").samples) == 2
    assert svc.student_detail(world.url, u["bob"], "S2").student_number == "S2"
    for who, sn in (("alice", "S3"), ("bob", "S1"), ("s1", "S2"), ("s2", "S3")):
        with pytest.raises(AccessDenied):
            svc.student_detail(world.url, u[who], sn)


def test_sample_photo_is_access_checked(world: World) -> None:
    u = world.users
    own = _sample_ids(world.url, "S1")[0]
    img = svc.sample_photo(world.url, world.store, u["s1"], own)
    assert img.ndim == 3 and img.dtype == np.uint8
    assert svc.sample_photo(world.url, world.store, u["alice"], own).shape == img.shape
    for who, sn in (("s1", "S2"), ("alice", "S3"), ("bob", "S1")):
        with pytest.raises(AccessDenied):
            svc.sample_photo(world.url, world.store, u[who], _sample_ids(world.url, sn)[0])


# --- creating a student ---------------------------------------------------------------------------

def test_instructor_adds_students_only_to_own_course(world: World) -> None:
    u = world.users
    assert svc.create_student(world.url, u["alice"], " N1 ", "New One", email=" n1@x.org ", course_code="A101") == "N1"
    with session_scope(world.url) as s:
        n1 = repo.get_student(s, "N1")
        assert (n1.email, n1.has_consent) == ("n1@x.org", False)
        assert [x.student_number for x in repo.roster(s, repo.get_course(s, "A101"))] == ["N1", "S1", "S2"]
    assert "N1" in svc.visible_students(world.url, u["alice"]).numbers
    assert "N1" not in svc.visible_students(world.url, u["bob"]).numbers

    with pytest.raises(AccessDenied):  # bob's course
        svc.create_student(world.url, u["alice"], "N2", "New Two", course_code="B202")
    with pytest.raises(AccessDenied):  # no course: the student would be nobody's
        svc.create_student(world.url, u["alice"], "N3", "New Three")
    with pytest.raises(AccessDenied):  # consent is the student's (or an admin's) to record
        svc.create_student(world.url, u["alice"], "N4", "New Four", consent=True, course_code="A101")
    with pytest.raises(AccessDenied):  # students never add students
        svc.create_student(world.url, u["s1"], "N5", "New Five", course_code="A101")
    assert not any(_exists(world.url, sn) for sn in ("N2", "N3", "N4", "N5"))
    with pytest.raises(ValueError, match="already exists"):
        svc.create_student(world.url, u["alice"], "S3", "Again", course_code="A101")
    with session_scope(world.url) as s:  # the failed duplicate did not put S3 on A101
        assert "S3" not in [x.student_number for x in repo.roster(s, repo.get_course(s, "A101"))]


def test_admin_adds_a_student_without_course_and_with_consent(world: World) -> None:
    assert svc.create_student(world.url, world.users["admin"], "N9", "Admin Added", consent=True) == "N9"
    assert _consent(world.url, "N9")
    assert "N9" not in svc.visible_students(world.url, world.users["alice"]).numbers


# --- deleting photos ------------------------------------------------------------------------------

def test_delete_sample_is_access_checked(world: World) -> None:
    u = world.users
    s3 = _sample_ids(world.url, "S3")[0]
    s2 = _sample_ids(world.url, "S2")[0]
    for who, sid in (("alice", s3), ("s1", s2), ("bob", _sample_ids(world.url, "S1")[0])):
        with pytest.raises(AccessDenied):
            svc.delete_sample(world.url, world.store, u[who], sid)
    assert len(_sample_ids(world.url, "S3")) == 2 and len(_sample_ids(world.url, "S2")) == 2
    # S2 is on bob's course too: he may; the student themself may delete their own
    with session_scope(world.url) as s:
        path = s.get(FaceSample, s2).image_path
    assert svc.delete_sample(world.url, world.store, u["bob"], s2)
    assert s2 not in _sample_ids(world.url, "S2") and not (world.store.root / path).exists()
    own = _sample_ids(world.url, "S1")[0]
    assert svc.delete_sample(world.url, world.store, u["s1"], own)
    assert not svc.delete_sample(world.url, world.store, u["s1"], own), "deleting twice is a no-op"
    assert _sample_ids(world.url, "S1") and own not in _sample_ids(world.url, "S1")


# --- consent, withdrawal, erasure --------------------------------------------------------------------

def test_consent_withdraw_and_erase_follow_privacy_rules(world: World) -> None:
    u = world.users
    with pytest.raises(AccessDenied):  # an instructor never consents for a student
        svc.give_consent(world.url, u["alice"], "S1")
    with pytest.raises(AccessDenied):  # not on alice's course
        svc.withdraw_consent(world.url, world.store, u["alice"], "S3")
    with pytest.raises(AccessDenied):  # another student
        svc.withdraw_consent(world.url, world.store, u["s1"], "S2")
    assert _consent(world.url, "S3") and len(_sample_ids(world.url, "S3")) == 2

    counts = svc.withdraw_consent(world.url, world.store, u["alice"], "S1")
    assert counts["samples"] == 2 and not _consent(world.url, "S1") and not _sample_ids(world.url, "S1")
    with pytest.raises(AccessDenied):
        svc.give_consent(world.url, u["s2"], "S1")
    svc.give_consent(world.url, u["s1"], "S1")  # the student themself
    assert _consent(world.url, "S1")

    for who in ("alice", "bob", "s1"):
        with pytest.raises(AccessDenied):
            svc.erase_student(world.url, world.store, u[who], "S1")
    assert _exists(world.url, "S1")
    assert svc.erase_student(world.url, world.store, u["admin"], "S3")["samples"] == 2
    assert not _exists(world.url, "S3")


# --- enrollment ------------------------------------------------------------------------------------

def test_enroll_photos_is_access_checked(world: World) -> None:
    u = world.users
    settings = Settings(data_dir=world.store.root, database_url="sqlite://")
    pipe = FakePipeline()
    photo = [("a.png", scene({0}))]
    for who, sn in (("alice", "S3"), ("s1", "S2"), ("bob", "S1")):
        with pytest.raises(AccessDenied):
            svc.enroll_photos(world.url, u[who], sn, photo, pipe, world.store, settings)
    assert len(_sample_ids(world.url, "S3")) == 2

    seen: list[tuple[int, int, str]] = []
    out = svc.enroll_photos(world.url, u["s1"], "S1", photo + [("b.png", scene({1}))], pipe, world.store, settings,
                            source="webcam", progress=lambda i, n, name: seen.append((i, n, name)))
    # A student's own first photos (nothing of theirs for this model to compare with) wait for review.
    assert [o.status for o in out] == ["pending", "pending"], [o.reasons for o in out]
    assert all(o.reasons == [enrollment.FIRST_PHOTOS_HELD] for o in out)
    assert seen == [(1, 2, "a.png"), (2, 2, "b.png")]
    with session_scope(world.url) as s:
        new = s.scalars(select(FaceSample).where(FaceSample.id.in_([o.sample_id for o in out]))).all()
        assert {(x.student.student_number, x.source) for x in new} == {("S1", "webcam")}

    svc.withdraw_consent(world.url, world.store, u["s1"], "S1")
    with pytest.raises(PermissionError, match="not consented"):
        svc.enroll_photos(world.url, u["s1"], "S1", photo, pipe, world.store, settings)
