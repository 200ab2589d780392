"""Classroom templates as stored data (issue 11, lever "enrollment templates at classroom
resolution"), on SQLite and the real MariaDB: made for accepted samples at session start, gone
with their sample, never matched without consent, off when the course says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, func, select
from trust_world import World

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import FaceSample, FaceTemplate
from aas_core.services import courses, enrollment, in_transaction, privacy
from aas_core.services import students as svc
from aas_core.vision import templates
from aas_core.vision.templates import DEFAULT_VIEWS, ClassroomGallery
from test_enrollment_identity import OBAMA, POWELL, PUTIN, photo


@pytest.fixture
def cfg(world: World, models_dir: Path) -> Settings:
    return Settings(data_dir=world.store.root, models_dir=models_dir, database_url=world.url)


@pytest.fixture
def calibrated(fast_pipeline, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    """The fast embedder with a classroom scale, whatever the shipped table says."""
    model = fast_pipeline.embedder.name
    monkeypatch.setattr(templates, "CLASSROOM_SCALES", {model: 0.7})
    return model


def n_templates(url: str) -> int:
    with session_scope(url) as s:
        return int(s.scalar(select(func.count(FaceTemplate.id))) or 0)


def test_templates_follow_samples_consent_and_the_course_switch(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, calibrated: str, data_dir: Path) -> None:
    u = world.users
    svc.enroll_photos(world.url, u["alice"], "S1", [photo(data_dir, POWELL, i) for i in (1, 2)],
                      fast_pipeline, world.store, cfg)
    svc.enroll_photos(world.url, u["alice"], "S2", [photo(data_dir, PUTIN, i) for i in (1, 2)],
                      fast_pipeline, world.store, cfg)
    with session_scope(world.url) as s:
        accepted = len(s.scalars(select(FaceSample.id).where(FaceSample.accepted.is_(True),
                                                             FaceSample.model_name == calibrated,
                                                             FaceSample.image_path.is_not(None))).all())
    # made at upload, from the photo as uploaded
    assert accepted >= 3 and n_templates(world.url) >= accepted
    # photos enrolled before templates existed get theirs at the next session start
    with session_scope(world.url) as s:
        s.execute(delete(FaceTemplate))
    enrollment.ensure_embeddings(world.url, "A101", fast_pipeline, world.store, cfg)
    assert n_templates(world.url) == accepted
    assert enrollment.ensure_classroom_templates(world.url, "A101", fast_pipeline, world.store, cfg) == 0  # idempotent
    with session_scope(world.url) as s:
        ids, embs = repo.classroom_arrays(s, repo.get_course(s, "A101"), calibrated)
    assert sorted(set(ids)) == ["S1", "S2"]
    assert embs.shape == (accepted * len(DEFAULT_VIEWS), fast_pipeline.embedder.dim)
    g = in_transaction(world.url, privacy.course_matching_gallery, u["alice"], "A101", calibrated)
    assert isinstance(g, ClassroomGallery) and sorted(g.student_ids) == ["S1", "S2"]
    # bob does not teach A101: the service refuses, whatever the page does
    with pytest.raises(Exception, match="(?i)not|denied|access"):
        in_transaction(world.url, privacy.course_matching_gallery, u["bob"], "A101", calibrated)

    # a deleted sample takes its templates with it (database cascade)
    with session_scope(world.url) as s:
        sid = s.scalars(select(FaceSample.id).join(FaceTemplate, FaceTemplate.sample_id == FaceSample.id)).first()
    assert svc.delete_sample(world.url, world.store, u["alice"], sid)
    assert n_templates(world.url) == accepted - 1

    # consent withdrawn: nothing of the student is matched (portraits go, so do templates)
    svc.withdraw_consent(world.url, world.store, u["alice"], "S2")
    with session_scope(world.url) as s:
        ids, _ = repo.classroom_arrays(s, repo.get_course(s, "A101"), calibrated)
    assert set(ids) == {"S1"}

    # the course switch: no templates used, and a session start makes none
    courses.update_config(world.url, u["alice"], "A101", assignments=["recognition.classroom_templates=false"])
    g = in_transaction(world.url, privacy.course_matching_gallery, u["alice"], "A101", calibrated)
    assert g is not None and not isinstance(g, ClassroomGallery)
    svc.enroll_photos(world.url, u["alice"], "S1", [photo(data_dir, POWELL, 3)], fast_pipeline, world.store, cfg)
    before = n_templates(world.url)
    enrollment.ensure_embeddings(world.url, "A101", fast_pipeline, world.store, cfg)
    assert n_templates(world.url) == before


def test_an_uncalibrated_embedder_gets_no_templates(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "CLASSROOM_SCALES", {})
    svc.enroll_photos(world.url, world.users["alice"], "S1", [photo(data_dir, OBAMA, 1)], fast_pipeline,
                      world.store, cfg)
    enrollment.ensure_embeddings(world.url, "A101", fast_pipeline, world.store, cfg)
    assert n_templates(world.url) == 0
    g = in_transaction(world.url, privacy.course_matching_gallery, world.users["alice"], "A101",
                       fast_pipeline.embedder.name)
    assert g is not None and not isinstance(g, ClassroomGallery)
    assert np.isfinite(g.scores(np.ones((1, g.dim), np.float32), model_name=g.model_name)).all()


def test_a_withdrawn_students_templates_are_withheld_too(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, calibrated: str, data_dir: Path) -> None:
    """Consent withdrawn mid-session: the student's faces are withheld as they would have been
    matched, portraits and classroom templates alike (a small face named only through a
    template must not be stored as someone unknown)."""
    from aas_core.services.sessions import SessionService

    u = world.users
    svc.enroll_photos(world.url, u["alice"], "S1", [photo(data_dir, POWELL, i) for i in (1, 2)],
                      fast_pipeline, world.store, cfg)
    svc.enroll_photos(world.url, u["alice"], "S2", [photo(data_dir, PUTIN, i) for i in (1, 2)],
                      fast_pipeline, world.store, cfg)
    service = SessionService(world.url, world.store, fast_pipeline, cfg)
    sid = service.start("A101")
    first = service.recognition(sid)
    assert isinstance(first.gallery, ClassroomGallery) and first.suppressed is None
    svc.withdraw_consent(world.url, world.store, u["alice"], "S2")
    later = service.recognition(sid)
    assert later.gallery is not None and "S2" not in later.gallery.student_ids
    assert isinstance(later.suppressed, ClassroomGallery) and later.suppressed.student_ids == ["S2"]
    assert later.suppressed._classroom.student_ids == ["S2"] and later.suppressed.scale == 0.7
    # a face that looks like one of S2's classroom templates is caught by the suppressed gallery
    # (row 0 of the template block is the mean, row 1 S2's first template)
    probe = later.suppressed._classroom._templates[1:2]
    assert float(later.suppressed.scores(probe, model_name=calibrated).max()) >= 0.7 - 1e-4
