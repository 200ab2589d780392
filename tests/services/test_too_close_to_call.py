"""A face too close to call between two students (``vision.matching.too_close_to_call``) names
neither: it is stored unknown (``match_source="ambiguous"``) and both students are "could not
tell" for that snapshot and listed for review. Real SessionService on SQLite and MariaDB; only
vision is faked (``fake_vision``), with one seat whose face is a near-even blend of two students."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_vision import DIM, FakeEmbedder, FakePipeline, scene, seat_vector
from sqlalchemy import select

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import AttendanceRecord, FaceObservation, Snapshot
from aas_core.media.store import ImageStore
from aas_core.services.enrollment import enroll_images
from aas_core.services.sessions import SessionService
from aas_core.vision.types import Detections

BLEND_SEAT = 5  # its face looks almost equally like S0 and S1 (a hair more like S1)


class BlendEmbedder(FakeEmbedder):
    def embed(self, image: np.ndarray, faces: Detections) -> np.ndarray:
        out = super().embed(image, faces)
        for i, box in enumerate(faces.xyxy):
            if int(round((box[0] - 6) / 60)) == BLEND_SEAT:
                v = seat_vector(0) + 1.02 * seat_vector(1)
                out[i] = v / np.linalg.norm(v)
        return out


class BlendPipeline(FakePipeline):
    def __init__(self) -> None:
        super().__init__()
        self.embedder = BlendEmbedder()


@pytest.fixture
def school(migrated: str, tmp_path: Path) -> tuple[str, ImageStore, Settings]:
    url = migrated
    store = ImageStore(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", database_url="sqlite://")
    with session_scope(url) as s:
        course = repo.add_course(s, "TC1", "Too close")
        for seat in (0, 1, 2):
            st = repo.add_student(s, f"S{seat}", f"S{seat}", consent=True)
            repo.enroll_in_course(s, course, st)
            [o] = enroll_images(s, st, [(f"S{seat}.png", scene({seat}))], FakePipeline(), store, settings)
            assert o.accepted, o.reasons
    return url, store, settings


def test_a_face_between_two_students_names_neither_and_asks_a_person(school: Any) -> None:
    url, store, settings = school
    v0, v1 = seat_vector(0), seat_vector(1)
    blend = (v0 + 1.02 * v1) / np.linalg.norm(v0 + 1.02 * v1)
    s0, s1 = float(blend @ v0), float(blend @ v1)
    assert 0.5 < s0 < s1 < s0 + 0.04 and DIM == len(v0)  # both over the threshold, S1 ahead by a hair

    svc = SessionService(url, store, BlendPipeline(), settings)
    # S0 sits in seat 0 in snapshots 2 and 3; S1 never comes; the blended face is there in snapshot 1.
    out = svc.run_from_images("TC1", [scene({2, BLEND_SEAT}), scene({0, 2}), scene({0, 2})])
    assert out.statuses["S2"] == "attended"
    assert out.statuses["S1"] == "absent"  # never a presence from a face too close to call
    assert out.statuses["S0"] == "attended"  # snapshot 1 could not tell; seen in 2 and 3
    assert {"S0", "S1"} <= set(out.needs_review)
    with session_scope(url) as s:
        first = s.scalars(select(Snapshot).where(Snapshot.session_id == out.session_id, Snapshot.index == 0)).one()
        [blended] = [o for o in first.observations if o.x1 > BLEND_SEAT * 60]
        assert blended.student_id is None and blended.match_source == "ambiguous"
        assert [t for t, _ in blended.top_matches[:2]] == ["S1", "S0"]  # kept for the reviewer
        recs = {r.student.student_number: r for r in s.scalars(select(AttendanceRecord)
                                                                .where(AttendanceRecord.session_id == out.session_id))}
        assert recs["S1"].presence[0] is None and recs["S0"].presence == [None, True, True]
        assert any("too close to call" in n for n in recs["S1"].review_reasons)
        # the clear faces of the session are named as before
        named = s.scalars(select(FaceObservation).where(FaceObservation.match_source == "threshold")).all()
        assert {o.student.student_number for o in named} == {"S0", "S2"}
