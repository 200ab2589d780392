"""Corrections that teach: a face corrected as "not X" vetoes later matches of X that look like it.

Real models, real synthetic classroom, SQLite and MariaDB. The course threshold is set very
low so the matcher names the stranger as some roster student (a false presence), as a badly
calibrated course would; the instructor rejects those names once, and the same faces seen again
are no longer named: the students they were mistaken for go to review instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from aas_core.config import get_settings
from aas_core.db import repo, session_scope
from aas_core.db.models import FaceCorrection, FaceObservation, Role, Snapshot
from aas_core.media.decode import read_image
from aas_core.media.store import ImageStore
from aas_core.services import corrections
from aas_core.services.auth import AccessDenied, AuthUser
from aas_core.services.enrollment import enroll_images
from aas_core.services.privacy import erase_student
from aas_core.services.review import correct_face
from aas_core.services.sessions import SessionService
from aas_core.tools.synthetic import make_session, scrfd_locator
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import resolve_profile

ADMIN = AuthUser(0, "admin", Role.ADMIN)


@pytest.fixture(scope="module")
def small_class(models_dir: Path, data_dir: Path):  # type: ignore[no-untyped-def]
    return make_session(data_dir / "faces_dev", scrfd_locator(models_dir), n_students=6, n_strangers=1, seed=3,
                        status_mix={"attended": 3, "late": 1, "left_early": 1, "absent": 1})


def _iou(a, b) -> float:  # type: ignore[no-untyped-def]
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _stranger_faces(url: str, session_id: int, small_class) -> list[FaceObservation]:  # type: ignore[no-untyped-def]
    with session_scope(url) as s:
        out = []
        for snap in s.scalars(select(Snapshot).where(Snapshot.session_id == session_id)):
            boxes = [f.box for f in small_class.snapshots[snap.index].faces if f.identity in small_class.strangers]
            out += [o for o in snap.observations
                    if any(_iou((o.x1, o.y1, o.x2, o.y2), b) > 0.5 for b in boxes)]
        s.expunge_all()
        return out


def test_rejected_names_veto_the_same_mistake_next_time_until_undone(migrated: str, tmp_path: Path,
                                                                     models_dir: Path, small_class) -> None:  # type: ignore[no-untyped-def]
    settings = get_settings()
    pipe = Pipeline(resolve_profile("fast", models_dir)[0], models_dir)
    store = ImageStore(tmp_path / "data")
    with session_scope(migrated) as s:
        inst = repo.add_instructor(s, "Prof")
        other = repo.add_instructor(s, "Other")
        course = repo.add_course(s, "C1", "C1", instructor_id=inst.id)
        rec = course.config.recognition.model_copy(update={"threshold": 0.02})
        course.config = course.config.model_copy(update={"recognition": rec})
        for sid, paths in small_class.enroll.items():
            st = repo.add_student(s, sid, sid, consent=True)
            repo.enroll_in_course(s, course, st)
            enroll_images(s, st, [(p.name, read_image(p)) for p in paths], pipe, store, settings)
        prof = AuthUser(1, "prof", Role.INSTRUCTOR, instructor_id=inst.id)
        stranger_prof = AuthUser(2, "other", Role.INSTRUCTOR, instructor_id=other.id)
    svc = SessionService(migrated, store, pipe, settings)
    images = [x.image for x in small_class.snapshots]

    first = svc.run_from_images("C1", images)
    named = [o for o in _stranger_faces(migrated, first.session_id, small_class) if o.student_id is not None]
    assert named, "at threshold 0.02 the stranger is named as some roster student"
    with session_scope(migrated) as s:
        mistaken = {s.get(FaceObservation, o.id).student.student_number for o in named}
    with pytest.raises(AccessDenied):
        corrections.reject_face(svc, stranger_prof, named[0].id)
    for o in named:
        corrections.reject_face(svc, prof, o.id)
    with session_scope(migrated) as s:
        assert s.query(FaceCorrection).count() == len(named)
        assert all(s.get(FaceObservation, o.id).match_source == "rejected" for o in named)
        assert set(repo.negatives_arrays(s, repo.get_course(s, "C1"), pipe.embedder.name)) == mistaken

    # The same room again: the stranger's faces are vetoed, never named, and who they were
    # mistaken for goes to review instead of being made present by them.
    second = svc.run_from_images("C1", images)
    faces = _stranger_faces(migrated, second.session_id, small_class)
    assert faces and all(o.student_id is None for o in faces)
    assert {o.match_source for o in faces} == {"vetoed"}
    assert {o.top_matches[0][0] for o in faces} <= mistaken
    assert set(second.needs_review) & mistaken
    # Students actually in the room are still recognised (the veto is specific to the corrected face).
    assert sum(v == "attended" for v in second.statuses.values()) >= sum(
        v == "attended" for k, v in first.statuses.items() if k not in mistaken)

    # The gallery view: corrections are listed for the course's instructor, not for another one.
    some = sorted(mistaken)[0]
    seen = corrections.for_student(migrated, prof, some)
    assert seen.standing >= 1 and all(r.course == "C1" for r in seen.negatives)
    with pytest.raises(AccessDenied):
        corrections.for_student(migrated, stranger_prof, some)

    # Undo every correction: the old mistake comes back (the veto was theirs alone).
    for student in mistaken:
        for row in corrections.for_student(migrated, prof, student).negatives:
            with pytest.raises(AccessDenied):
                corrections.undo(migrated, stranger_prof, row.id)
            corrections.undo(migrated, prof, row.id)
    third = svc.run_from_images("C1", images)
    assert any(o.student_id is not None for o in _stranger_faces(migrated, third.session_id, small_class))


def test_a_correction_retires_with_the_face_it_was_made_from(migrated: str, tmp_path: Path, models_dir: Path,
                                                            small_class) -> None:  # type: ignore[no-untyped-def]
    """Reassigning a face to Y keeps it as a negative for X; erasing Y removes Y's face embedding
    and with it that negative (a correction never keeps a copy of anyone's face)."""
    settings = get_settings()
    pipe = Pipeline(resolve_profile("fast", models_dir)[0], models_dir)
    store = ImageStore(tmp_path / "data")
    with session_scope(migrated) as s:
        course = repo.add_course(s, "C1", "C1")
        rec = course.config.recognition.model_copy(update={"threshold": 0.02})
        course.config = course.config.model_copy(update={"recognition": rec})
        for sid, paths in small_class.enroll.items():
            st = repo.add_student(s, sid, sid, consent=True)
            repo.enroll_in_course(s, course, st)
            enroll_images(s, st, [(p.name, read_image(p)) for p in paths], pipe, store, settings)
        repo.add_student(s, "Y1", "Visitor", consent=True)
        repo.enroll_in_course(s, course, repo.get_student(s, "Y1"))
    svc = SessionService(migrated, store, pipe, settings)
    out = svc.run_from_images("C1", [x.image for x in small_class.snapshots])
    face = next(o for o in _stranger_faces(migrated, out.session_id, small_class) if o.student_id is not None)
    correct_face(svc, ADMIN, face.id, "Y1")
    with session_scope(migrated) as s:
        c = s.scalar(select(FaceCorrection))
        assert c.assigned_student.student_number == "Y1"
        wrong = c.not_student.student_number
        assert wrong in repo.negatives_arrays(s, repo.get_course(s, "C1"), pipe.embedder.name)
    with session_scope(migrated) as s:
        erase_student(s, store, ADMIN, "Y1")
    with session_scope(migrated) as s:
        assert s.get(FaceObservation, face.id).embedding is None
        assert wrong not in repo.negatives_arrays(s, repo.get_course(s, "C1"), pipe.embedder.name)
    assert corrections.for_student(migrated, ADMIN, wrong).standing == 0
