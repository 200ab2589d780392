"""Students see their own evidence and dispute a status; instructors resolve; nobody sees more."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_vision import FakePipeline, scene
from sqlalchemy import select

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import AttendanceRecord, AuditLog, Dispute, FaceObservation, Role
from aas_core.media.store import ImageStore
from aas_core.services import disputes
from aas_core.services.auth import AccessDenied, AuthUser
from aas_core.services.enrollment import enroll_images
from aas_core.services.privacy import erase_student
from aas_core.services.sessions import SessionService

SEATS = {"S1": 0, "S2": 1, "S3": 2}


@pytest.fixture
def world(migrated: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    store = ImageStore(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", database_url="sqlite://")
    pipe = FakePipeline()
    with session_scope(migrated) as s:
        inst = repo.add_instructor(s, "Prof")
        other = repo.add_instructor(s, "Other")
        course = repo.add_course(s, "D1", "Disputes", instructor_id=inst.id)
        for sn, seat in SEATS.items():
            st = repo.add_student(s, sn, sn, consent=True)
            repo.enroll_in_course(s, course, st)
            [o] = enroll_images(s, st, [(f"{sn}.png", scene({seat}))], pipe, store, settings)
            assert o.accepted
    svc = SessionService(migrated, store, pipe, settings, seat_continuity=False)
    # S1 in every snapshot, S2 only in the first (left early), S3 never (absent)
    out = svc.run_from_images("D1", [scene({0, 1}), scene({0}), scene({0})])
    assert out.statuses == {"S1": "attended", "S2": "left_early", "S3": "absent"}
    return {"url": migrated, "store": store, "session": out.session_id,
            "prof": AuthUser(1, "prof", Role.INSTRUCTOR, instructor_id=inst.id),
            "other": AuthUser(2, "other", Role.INSTRUCTOR, instructor_id=other.id),
            "s1": AuthUser(3, "s1", Role.STUDENT, student_number="S1"),
            "s2": AuthUser(4, "s2", Role.STUDENT, student_number="S2")}


def test_a_student_sees_only_their_own_faces_and_status(world) -> None:  # type: ignore[no-untyped-def]
    url, store = world["url"], world["store"]
    [mine] = disputes.my_sessions(url, world["s2"])
    assert (mine.status, mine.course, mine.dispute) == ("left_early", "D1", None)
    assert len(mine.evidence) == 1  # seen in the first snapshot only
    crop = disputes.my_face(url, store, world["s2"], mine.evidence[0])
    assert crop.ndim == 3
    with session_scope(url) as s:
        others = [o.id for o in s.scalars(select(FaceObservation)) if o.id not in mine.evidence]
    assert others
    for oid in [*others, 999_999]:
        with pytest.raises(AccessDenied, match="not a face of yours"):
            disputes.my_face(url, store, world["s2"], oid)
    with pytest.raises(AccessDenied):
        disputes.my_sessions(url, world["prof"])  # an instructor has no "own" sessions here


def test_dispute_then_uphold_changes_the_status_and_the_student_sees_the_outcome(world) -> None:  # type: ignore[no-untyped-def]
    url, sid = world["url"], world["session"]
    with pytest.raises(ValueError, match="say why"):
        disputes.open_dispute(url, world["s2"], sid, "  ")
    with pytest.raises(ValueError, match="at most"):
        disputes.open_dispute(url, world["s2"], sid, "x" * 1001)
    d = disputes.open_dispute(url, world["s2"], sid, "I stayed until the end, back row by the window.")
    assert d.status == "open" and d.status_before == "left_early"
    with pytest.raises(ValueError, match="already have an open dispute"):
        disputes.open_dispute(url, world["s2"], sid, "again")
    # the instructor of the course sees it with the evidence; another instructor does not
    [seen] = disputes.session_disputes(url, world["prof"], sid)
    assert seen.id == d.id and seen.evidence == d.evidence and seen.message.startswith("I stayed")
    assert [x.id for x in disputes.open_disputes(url, world["prof"])] == [d.id]
    assert disputes.open_disputes(url, world["other"]) == []
    with pytest.raises(AccessDenied):
        disputes.session_disputes(url, world["other"], sid)
    with pytest.raises(AccessDenied):
        disputes.resolve(url, world["other"], d.id, uphold=True, new_status="attended", reason="ok")
    with pytest.raises(AccessDenied):  # a student cannot resolve their own dispute
        disputes.resolve(url, world["s2"], d.id, uphold=True, new_status="attended", reason="ok")
    with pytest.raises(ValueError, match="reason"):
        disputes.resolve(url, world["prof"], d.id, uphold=True, new_status="attended", reason="")
    done = disputes.resolve(url, world["prof"], d.id, uphold=True, new_status="attended",
                            reason="Seen on the hallway camera at 10:25.")
    assert (done.status, done.status_after, done.resolved_by) == ("upheld", "attended", "prof")
    with session_scope(url) as s:
        rec = s.scalar(select(AttendanceRecord).join(AttendanceRecord.student).where(
            AttendanceRecord.session_id == sid, AttendanceRecord.student.has(student_number="S2")))
        assert rec.final_status == "attended" and rec.overridden_by == "prof"
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
        assert {"dispute.open", "dispute.resolve", "attendance.override"} <= set(actions)
        # the audit keeps ids and statuses, never the student's words
        assert not any("back row" in str(a.details) for a in s.scalars(select(AuditLog)))
    [mine] = disputes.my_sessions(url, world["s2"])
    assert mine.status == "attended" and mine.dispute.status == "upheld"
    assert mine.dispute.resolution == "Seen on the hallway camera at 10:25."
    with pytest.raises(ValueError, match="already upheld"):
        disputes.resolve(url, world["prof"], d.id, uphold=False, reason="no")


def test_a_rejected_dispute_leaves_the_status_and_a_student_cannot_dispute_for_another(world) -> None:  # type: ignore[no-untyped-def]
    url, sid = world["url"], world["session"]
    # S1 may dispute only their own record; S3's record is not theirs to contest
    d = disputes.open_dispute(url, world["s1"], sid, "Why 'attended'? Fine, just checking.")
    done = disputes.resolve(url, world["prof"], d.id, uphold=False, reason="Seen in all three snapshots.")
    assert done.status == "rejected" and done.status_after is None
    [mine] = disputes.my_sessions(url, world["s1"])
    assert mine.status == "attended" and mine.dispute.status == "rejected"
    with pytest.raises(AccessDenied):
        disputes.open_dispute(url, AuthUser(9, "ghost", Role.STUDENT, student_number=None), sid, "hi")
    with pytest.raises(AccessDenied, match="no attendance record"):
        disputes.open_dispute(url, world["s1"], sid + 1000, "not my session")
    # erasure takes the student's disputes (their words) with them
    with session_scope(url) as s:
        erase_student(s, world["store"], AuthUser(0, "admin", Role.ADMIN), "S1")
    with session_scope(url) as s:
        assert s.scalars(select(Dispute)).all() == []
