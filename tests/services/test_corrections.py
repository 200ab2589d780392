"""Review corrections: "that face is student X", with and without adding it to the gallery."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from aas_core.config import get_settings
from aas_core.db import repo, session_scope
from aas_core.db.models import AttendanceRecord, AuditLog, FaceObservation, FaceSample, Role
from aas_core.media.decode import read_image
from aas_core.media.store import ImageStore
from aas_core.services.auth import AuthUser
from aas_core.services.enrollment import enroll_images
from aas_core.services.review import correct_face
from aas_core.services.sessions import SessionService
from aas_core.tools.synthetic import make_session, scrfd_locator
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import resolve_profile

PROF = AuthUser(0, "prof", Role.ADMIN)


@pytest.fixture(scope="module")
def small_class(models_dir: Path, data_dir: Path):  # type: ignore[no-untyped-def]
    return make_session(data_dir / "faces_dev", scrfd_locator(models_dir), n_students=6, n_strangers=1, seed=3,
                        status_mix={"attended": 3, "late": 1, "left_early": 1, "absent": 1})


def test_correcting_an_unknown_face_updates_statuses_and_gallery(migrated: str, tmp_path: Path, models_dir: Path,
                                                                  small_class) -> None:  # type: ignore[no-untyped-def]
    settings = get_settings()
    pipe = Pipeline(resolve_profile("fast", models_dir)[0], models_dir)
    store = ImageStore(tmp_path / "data")
    absent = next(k for k, v in small_class.truth.items() if v == "absent")
    with session_scope(migrated) as s:
        course = repo.add_course(s, "C1", "C1")
        for sid, paths in small_class.enroll.items():
            st = repo.add_student(s, sid, sid, consent=sid != absent)
            repo.enroll_in_course(s, course, st)
            if sid != absent:
                enroll_images(s, st, [(p.name, read_image(p)) for p in paths], pipe, store, settings)
    svc = SessionService(migrated, store, pipe, settings)
    out = svc.run_from_images("C1", [x.image for x in small_class.snapshots])
    assert out.statuses[absent] == "absent"
    with session_scope(migrated) as s:
        unknown = s.scalars(select(FaceObservation).where(FaceObservation.student_id.is_(None))).all()
        assert unknown, "the stranger should be an unknown face"
        stranger_face = unknown[0].id
        samples_before = s.query(FaceSample).count()

    # Say the stranger's face is the (non-consenting) absent student: status changes, gallery does not.
    outcome, sample = correct_face(svc, PROF, stranger_face, absent, add_to_gallery=True)
    assert outcome.statuses[absent] != "absent"
    assert sample is not None and not sample.accepted and "consent" in sample.reasons[0]
    with session_scope(migrated) as s:
        obs = s.get(FaceObservation, stranger_face)
        assert obs.match_source == "manual" and obs.student.student_number == absent
        assert s.query(FaceSample).count() == samples_before
        assert s.scalar(select(AuditLog).where(AuditLog.action == "face.correct")) is not None
        # one record per student still, and re-deciding kept them consistent
        assert s.query(AttendanceRecord).count() == len(small_class.truth)

    # A consenting student: the face goes through the quality gate into their gallery.
    consenting = next(k for k in small_class.truth if k != absent)
    outcome, sample = correct_face(svc, PROF, stranger_face, consenting, add_to_gallery=True)
    assert sample is not None
    with session_scope(migrated) as s:
        added = s.scalars(select(FaceSample).where(FaceSample.source == "correction")).all()
        # Stored unless refused; a stranger's face that does not look like the student is held for
        # review (pending) rather than used for recognition.
        assert [x.status.value for x in added] == ([] if sample.status == "rejected" else [sample.status])
        assert all(x.accepted == (x.status.value == "accepted") for x in added)
        assert s.get(FaceObservation, stranger_face).student.student_number == consenting
    with pytest.raises(ValueError, match="not on the roster"):
        with session_scope(migrated) as s:
            repo.add_student(s, "OUTSIDER", "x", consent=True)
        correct_face(svc, PROF, stranger_face, "OUTSIDER")
