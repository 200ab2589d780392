"""Roster take-over: an instructor cannot put a student of someone else's course on their roster
(which would give them that student's photos, e-mail and consent), by the picker or by CSV.
On SQLite and MariaDB (``world``: alice teaches A101 = S1, S2; bob teaches B202 = S2, S3)."""

from __future__ import annotations

import pytest
from trust_world import World

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.services import courses
from aas_core.services.auth import AccessDenied, require_student_access
from aas_core.services.roster import parse_roster_csv


def _roster(url: str, code: str) -> list[str]:
    with session_scope(url) as s:
        return [x.student_number for x in repo.roster(s, repo.get_course(s, code))]


def test_instructor_sees_and_adds_only_own_students(world: World) -> None:
    alice, admin = world.users["alice"], world.users["admin"]
    courses.create_course(world.url, alice, Settings(), "A999", "Alice's second course")
    view = courses.roster(world.url, alice, "A999")
    assert view.others == [("S1", "Student S1"), ("S2", "Student S2")]  # never S3 (only on bob's course)
    assert courses.add_students(world.url, alice, "A999", ["S1"]) == 1
    with pytest.raises(AccessDenied) as exc:
        courses.add_students(world.url, alice, "A999", ["S2", "S3"])
    assert "Student S3" not in str(exc.value) and "B202" not in str(exc.value)
    assert _roster(world.url, "A999") == ["S1"]  # all or nothing: S2 was not added either
    with pytest.raises(AccessDenied):  # an unknown id gets the same answer (no probing for ids)
        courses.add_students(world.url, alice, "A999", ["NOPE"])
    # and the take-over it would have allowed is still refused
    with session_scope(world.url) as s, pytest.raises(AccessDenied):
        require_student_access(alice, repo.get_student(s, "S3"))
    # an admin may put anyone on any roster
    assert ("S3", "Student S3") in courses.roster(world.url, admin, "A999").others
    assert courses.add_students(world.url, admin, "A999", ["S3"]) == 1


def test_csv_import_refuses_someone_elses_student_without_naming_them(world: World) -> None:
    alice = world.users["alice"]
    courses.create_course(world.url, alice, Settings(), "A998", "Alice's CSV course")
    rows = parse_roster_csv("student_id,name\nS3,Whoever\nS1,Student S1\nN1,New Person\n").rows
    res = courses.import_roster(world.url, alice, "A998", rows)
    assert res.refused == ["S3"] and sorted(res.added) == ["N1", "S1"] and res.created == ["N1"]
    text = " ".join(res.warnings)
    assert "line 2" in text and "Student S3" not in text and "B202" not in text and "bob" not in text.lower()
    assert _roster(world.url, "A998") == ["N1", "S1"]
    with pytest.raises(AccessDenied):  # the instructor of another course cannot import into this one
        courses.import_roster(world.url, world.users["bob"], "A998", rows)
