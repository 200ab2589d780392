"""Access rules through the privacy services, on SQLite and MariaDB.

Students see only themselves; instructors only their own courses (and those courses'
students); admins everything. Refusals raise ``AccessDenied`` before any data is returned.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select
from trust_world import World

from aas_core.db import session_scope
from aas_core.db.models import FaceObservation, FaceSample, Snapshot, Student
from aas_core.services import privacy
from aas_core.services.auth import AccessDenied


def _sample_ids(url: str, sn: str) -> list[int]:
    with session_scope(url) as s:
        return list(s.scalars(select(FaceSample.id).join(Student).where(Student.student_number == sn)))


def test_student_reads_only_own_records_and_images(world: World) -> None:
    s1, s2 = world.users["s1"], world.users["s2"]
    with session_scope(world.url) as s:
        own = privacy.student_records(s, s1, "S1")
        assert {r["student_number"] for r in own} == {"S1"} and len(own) == 2
        with pytest.raises(AccessDenied):
            privacy.student_records(s, s1, "S2")
        with pytest.raises(AccessDenied):
            privacy.student_records(s, s2, "S3")
        # images: own samples yes, someone else's no
        assert len(privacy.student_samples(s, s1, "S1")) == 2
        img = privacy.sample_image(s, world.store, s1, _sample_ids(world.url, "S1")[0])
        assert img.ndim == 3 and img.dtype == np.uint8
        with pytest.raises(AccessDenied):
            privacy.student_samples(s, s1, "S2")
        with pytest.raises(AccessDenied):
            privacy.sample_image(s, world.store, s1, _sample_ids(world.url, "S2")[0])
        # classroom snapshots and face crops (other people's faces) are never for students
        snap_id = s.scalar(select(Snapshot.id).where(Snapshot.session_id == world.sessions["A_new"]))
        obs_id = s.scalar(select(FaceObservation.id).where(FaceObservation.snapshot_id == snap_id))
        with pytest.raises(AccessDenied):
            privacy.snapshot_image(s, world.store, s1, snap_id)
        with pytest.raises(AccessDenied):
            privacy.observation_crop(s, world.store, s1, obs_id)
        with pytest.raises(AccessDenied):
            privacy.course_sessions(s, s1, "A101")
        # export: a student gets only their own rows, even of a course they are on
        rows = privacy.export_attendance(s, s2, "A101")
        assert rows and {r["student_number"] for r in rows} == {"S2"}


def test_instructor_sees_only_own_course(world: World) -> None:
    alice, bob = world.users["alice"], world.users["bob"]
    with session_scope(world.url) as s:
        mine = privacy.course_sessions(s, alice, "A101")
        assert {x["session_id"] for x in mine} == {world.sessions["A_old"], world.sessions["A_new"]}
        with pytest.raises(AccessDenied):
            privacy.course_sessions(s, alice, "B202")
        with pytest.raises(AccessDenied):
            privacy.export_attendance(s, alice, "B202")
        with pytest.raises(AccessDenied):
            privacy.student_records(s, alice, "S3")  # only on bob's course
        with pytest.raises(AccessDenied):
            privacy.student_samples(s, bob, "S1")
        # S2 is on both courses: each instructor sees only the rows of their own course
        a_rows = privacy.student_records(s, alice, "S2")
        b_rows = privacy.student_records(s, bob, "S2")
        assert {r["course"] for r in a_rows} == {"A101"} and {r["course"] for r in b_rows} == {"B202"}
        snap_b = s.scalar(select(Snapshot.id).where(Snapshot.session_id == world.sessions["B_new"]))
        with pytest.raises(AccessDenied):
            privacy.snapshot_image(s, world.store, alice, snap_b)
        assert privacy.snapshot_image(s, world.store, bob, snap_b).ndim == 3
        exported = privacy.export_attendance(s, alice, "A101")
        assert {r["student_number"] for r in exported} == {"S1", "S2"}


def test_admin_sees_everything(world: World) -> None:
    admin = world.users["admin"]
    with session_scope(world.url) as s:
        assert len(privacy.course_sessions(s, admin, "A101")) == 2
        assert len(privacy.course_sessions(s, admin, "B202")) == 1
        assert {r["course"] for r in privacy.student_records(s, admin, "S2")} == {"A101", "B202"}
        assert len(privacy.student_samples(s, admin, "S3")) == 2
        assert len(privacy.export_attendance(s, admin, "B202")) == 2


def test_privileged_actions_are_refused_for_non_admins(world: World) -> None:
    with session_scope(world.url) as s:
        for who in ("alice", "s1"):
            with pytest.raises(AccessDenied):
                privacy.erase_student(s, world.store, world.users[who], "S1")
            with pytest.raises(AccessDenied):
                privacy.purge_old_media(s, world.store, world.users[who], 30)
        with pytest.raises(AccessDenied):  # nobody consents on a student's behalf but an admin
            privacy.give_consent(s, world.users["alice"], "S1")
        with pytest.raises(AccessDenied):
            privacy.give_consent(s, world.users["s1"], "S2")
        with pytest.raises(AccessDenied):  # a student cannot withdraw another student's consent
            privacy.withdraw_consent(s, world.store, world.users["s1"], "S2")
        with pytest.raises(AccessDenied):  # an instructor only for students on their courses
            privacy.withdraw_consent(s, world.store, world.users["alice"], "S3")
    # nothing was touched by the refused calls
    from trust_world import all_files
    assert all(f in all_files(world.store) for fs in world.files_of.values() for f in fs)


def test_export_is_audited_and_csv_is_formula_safe(world: World) -> None:
    from aas_core.db.models import AuditLog

    with session_scope(world.url) as s:
        st = s.scalar(select(Student).where(Student.student_number == "S1"))
        st.name = "=HYPERLINK(\"http://evil\")"
    with session_scope(world.url) as s:
        rows = privacy.export_attendance(s, world.users["alice"], "A101")
    text = privacy.export_csv(rows)
    assert text.splitlines()[0] == ",".join(privacy.EXPORT_COLUMNS)
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    with session_scope(world.url) as s:
        a = s.scalars(select(AuditLog).where(AuditLog.action == "export")).one()
        assert (a.actor, a.target_id, a.details) == ("alice", "A101", {"rows": len(rows)})


def test_instructor_without_instructor_row_sees_no_unassigned_course(world: World) -> None:
    """None == None must not grant access: an unlinked instructor account sees nothing."""
    from aas_core.db import repo
    from aas_core.db.models import Role
    from aas_core.services.auth import AuthUser

    ghost = AuthUser(99, "ghost", Role.INSTRUCTOR, instructor_id=None)
    with session_scope(world.url) as s:
        c = repo.add_course(s, "C303", "Unassigned")  # no instructor
        repo.enroll_in_course(s, c, repo.get_student(s, "S1"))
    with session_scope(world.url) as s:
        with pytest.raises(AccessDenied):
            privacy.course_sessions(s, ghost, "C303")
        with pytest.raises(AccessDenied):
            privacy.student_records(s, ghost, "S1")
        with pytest.raises(AccessDenied):
            privacy.export_attendance(s, ghost, "C303")
        assert privacy.course_sessions(s, world.users["admin"], "C303") == []


def test_gallery_and_stored_snapshots_are_scoped_to_the_course(world: World) -> None:
    """The Inspector's gallery and snapshot list come from access-checked privacy functions."""
    alice, bob, s1 = world.users["alice"], world.users["bob"], world.users["s1"]
    with session_scope(world.url) as s:
        model = s.scalar(select(FaceSample.model_name).where(FaceSample.model_name.is_not(None)))
        ids, _ = privacy.course_gallery(s, alice, "A101", model)
        assert privacy.course_gallery_version(s, alice, "A101", model)[1] == len(ids)
        for who in (bob, s1):
            with pytest.raises(AccessDenied):
                privacy.course_gallery(s, who, "A101", model)
            with pytest.raises(AccessDenied):
                privacy.course_gallery_version(s, who, "A101", model)
        mine = privacy.stored_snapshots(s, alice)
        assert mine and {r[2] for r in mine} <= {world.sessions["A_old"], world.sessions["A_new"]}
        assert not {r[2] for r in privacy.stored_snapshots(s, bob)} & {r[2] for r in mine}
        assert privacy.stored_snapshots(s, s1) == []
