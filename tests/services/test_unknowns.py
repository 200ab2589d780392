"""Recurring unknown faces: grouped across sessions, named as a student or dismissed as a visitor."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from aas_core.config import get_settings
from aas_core.db import repo, session_scope
from aas_core.db.models import AuditLog, ClassSession, FaceObservation, FaceSample, Role, utcnow
from aas_core.media.decode import read_image
from aas_core.media.store import ImageStore
from aas_core.services import unknowns
from aas_core.services.auth import AccessDenied, AuthUser
from aas_core.services.enrollment import enroll_images
from aas_core.services.privacy import purge_old_media
from aas_core.services.sessions import SessionService
from aas_core.tools.synthetic import make_session, scrfd_locator
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import resolve_profile

ADMIN = AuthUser(0, "admin", Role.ADMIN)


@pytest.fixture(scope="module")
def small_class(models_dir: Path, data_dir: Path):  # type: ignore[no-untyped-def]
    return make_session(data_dir / "faces_dev", scrfd_locator(models_dir), n_students=5, n_strangers=1, seed=11,
                        status_mix={"attended": 5})


def _another_day(img: np.ndarray, seed: int) -> np.ndarray:
    """The same room another day: a little darker and noisier (never the same pixels)."""
    rng = np.random.default_rng(seed)
    out = img.astype(np.float32) * 0.85 + rng.normal(0, 4, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _stranger_ids(url: str, small_class) -> set[int]:  # type: ignore[no-untyped-def]
    boxes = {k: [f.box for f in sc.faces if f.identity in small_class.strangers]
             for k, sc in enumerate(small_class.snapshots)}
    out = set()
    with session_scope(url) as s:
        for o in s.scalars(select(FaceObservation)):
            for b in boxes[o.snapshot.index]:
                ix = max(0.0, min(o.x2, b[2]) - max(o.x1, b[0]))
                iy = max(0.0, min(o.y2, b[3]) - max(o.y1, b[1]))
                if ix * iy > 0.5 * (b[2] - b[0]) * (b[3] - b[1]):
                    out.add(o.id)
    return out


@pytest.fixture
def two_sessions(migrated: str, tmp_path: Path, models_dir: Path, small_class):  # type: ignore[no-untyped-def]
    settings = get_settings()
    pipe = Pipeline(resolve_profile("fast", models_dir)[0], models_dir)
    store = ImageStore(tmp_path / "data")
    with session_scope(migrated) as s:
        inst = repo.add_instructor(s, "Prof")
        course = repo.add_course(s, "C1", "C1", instructor_id=inst.id)
        for sid, paths in small_class.enroll.items():
            st = repo.add_student(s, sid, sid, consent=True)
            repo.enroll_in_course(s, course, st)
            enroll_images(s, st, [(p.name, read_image(p)) for p in paths], pipe, store, settings)
        repo.enroll_in_course(s, course, repo.add_student(s, "V1", "Visiting student", consent=True))
        prof = AuthUser(1, "prof", Role.INSTRUCTOR, instructor_id=inst.id)
    svc = SessionService(migrated, store, pipe, settings)
    outs = [svc.run_from_images("C1", [x.image for x in small_class.snapshots]),
            svc.run_from_images("C1", [_another_day(x.image, k) for k, x in enumerate(small_class.snapshots)])]
    return svc, prof, outs


def test_the_stranger_is_one_recurring_unknown_who_can_be_named(two_sessions, small_class) -> None:  # type: ignore[no-untyped-def]
    svc, prof, outs = two_sessions
    assert all(o.statuses["V1"] == "absent" for o in outs)
    sim = svc.pipeline.embedder.default_threshold
    clusters = unknowns.recurring_unknowns(svc.url, prof, "C1", sim)
    stranger = _stranger_ids(svc.url, small_class)
    # The stranger is one group of their own (other groups are faces of students the matcher
    # missed twice: recurring unknowns too, which "this is student Y" fixes).
    theirs = [c for c in clusters if set(c.observation_ids) & stranger]
    assert len(theirs) == 1, clusters
    [c] = theirs
    assert set(c.observation_ids) <= stranger and len(c.observation_ids) >= 4
    assert all(not set(x.observation_ids) & stranger for x in clusters if x is not c)
    assert c.describe() == "unknown person seen in 2 of the last 2 sessions"
    assert set(c.best) <= set(c.observation_ids) and len(c.best) <= 4
    with pytest.raises(AccessDenied):
        unknowns.recurring_unknowns(svc.url, AuthUser(9, "other", Role.INSTRUCTOR, instructor_id=999), "C1", sim)

    sessions, outcomes = unknowns.name_cluster(svc, prof, "C1", c.observation_ids, "V1", best=c.best)
    assert sorted(sessions) == sorted(o.session_id for o in outs)
    assert outcomes and any(x.status in ("accepted", "pending") for x in outcomes)
    with session_scope(svc.url) as s:
        for o in outs:
            rec = {r.student.student_number: r.final_status for r in s.get(ClassSession, o.session_id).records}
            assert rec["V1"] == "attended"
        assert s.scalars(select(FaceSample).where(FaceSample.source == "correction")).all()
        assert s.scalar(select(AuditLog).where(AuditLog.action == "unknown.named")) is not None
    assert c not in unknowns.recurring_unknowns(svc.url, prof, "C1", sim)
    with pytest.raises(ValueError, match="named since"):
        unknowns.dismiss_cluster(svc.url, prof, "C1", c.observation_ids)


def test_a_visitor_is_not_shown_again_and_retention_dissolves_groups(two_sessions) -> None:  # type: ignore[no-untyped-def]
    svc, prof, outs = two_sessions
    sim = svc.pipeline.embedder.default_threshold
    before = unknowns.recurring_unknowns(svc.url, prof, "C1", sim)
    c = before[0]
    assert unknowns.dismiss_cluster(svc.url, prof, "C1", c.observation_ids) == len(c.observation_ids)
    assert unknowns.recurring_unknowns(svc.url, prof, "C1", sim) == before[1:]
    with_visitors = unknowns.recurring_unknowns(svc.url, prof, "C1", sim, include_visitors=True)
    [hidden] = [x for x in with_visitors if x.visitor]
    assert hidden.observation_ids == c.observation_ids
    # The retention purge nulls face embeddings and deletes crops: nothing is left to group.
    with session_scope(svc.url) as s:
        for sess in s.scalars(select(ClassSession)):
            sess.started_at = utcnow() - timedelta(days=40)
    with session_scope(svc.url) as s:
        purge_old_media(s, svc.store, ADMIN, 30)
    assert unknowns.recurring_unknowns(svc.url, prof, "C1", sim, include_visitors=True) == []
