"""The hard lecture-hall generator: reproducible, degraded as configured, bursts of distinct frames."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aas_core.tools.lecture_hall import CONDITIONS, make_hard_session
from aas_core.tools.synthetic import scrfd_locator


@pytest.fixture(scope="module")
def locate(models_dir: Path):  # type: ignore[no-untyped-def]
    return scrfd_locator(models_dir)


def test_a_seed_gives_the_same_session_and_bursts_are_distinct_frames(locate, data_dir: Path) -> None:
    c = replace(CONDITIONS["lecture_hall"], burst=3)
    a = make_hard_session(data_dir / "faces_dev", locate, c, seed=5, n_students=12, n_strangers=2)
    b = make_hard_session(data_dir / "faces_dev", locate, c, seed=5, n_students=12, n_strangers=2)
    assert a.truth == b.truth and a.strangers == b.strangers
    for x, y in zip(a.bursts, b.bursts):
        assert len(x.frames) == 3
        assert all(np.array_equal(f, g) for f, g in zip(x.frames, y.frames))
        # each frame has its own noise: the same room, never the same pixels
        assert not np.array_equal(x.frames[0], x.frames[1])
        assert np.abs(x.frames[0].astype(int) - x.frames[1].astype(int)).mean() < 12
    present = {s for s, v in a.truth.items() if v != "absent"}
    seen = {f.identity for burst in a.bursts for f in burst.faces}
    assert present | set(a.strangers) == seen  # every present student and stranger is in the room


def test_the_lecture_hall_is_darker_and_noisier_than_the_clean_room(locate, data_dir: Path) -> None:
    kw = dict(seed=3, n_students=12, n_strangers=2, burst=1)
    clean = make_hard_session(data_dir / "faces_dev", locate, CONDITIONS["clean"], **kw)
    hall = make_hard_session(data_dir / "faces_dev", locate, CONDITIONS["lecture_hall"], **kw)
    assert hall.bursts[0].frames[0].mean() < clean.bursts[0].frames[0].mean()
    small = min(f.size for f in hall.bursts[0].faces)
    assert small < min(f.size for f in clean.bursts[0].faces) and small < 32


def test_4k_is_the_same_room_with_twice_the_pixels_per_face(locate, data_dir: Path) -> None:
    c4 = CONDITIONS["lecture_hall"].at_4k()
    assert c4.size == (2160, 3840) and c4.face_px == (52.0, 160.0)


def test_another_day_is_the_same_class_in_the_same_seats_with_new_attendance_and_photos(locate, data_dir: Path) -> None:
    c = replace(CONDITIONS["lecture_hall"], burst=1)
    kw = dict(seed=5, n_students=12, n_strangers=2)
    day0 = make_hard_session(data_dir / "faces_dev", locate, c, **kw)
    again = make_hard_session(data_dir / "faces_dev", locate, c, day=0, **kw)
    day1 = make_hard_session(data_dir / "faces_dev", locate, c, day=1, **kw)
    assert np.array_equal(day0.bursts[0].frames[0], again.bursts[0].frames[0])  # day 0 is unchanged
    assert set(day1.truth) == set(day0.truth) and day1.strangers == day0.strangers and day1.enroll == day0.enroll
    assert not np.array_equal(day0.bursts[0].frames[0], day1.bursts[0].frames[0])
    # who came that day is drawn again, from the same mix of statuses
    assert sorted(day1.truth.values()) == sorted(day0.truth.values())
