"""Over-long text is refused with a clear message before it reaches either database."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from aas_core.db import repo, session_scope
from aas_core.db.limits import FieldTooLong
from aas_core.db.models import Student


def test_over_long_name_is_refused_before_the_database(migrated: str) -> None:
    # On MariaDB this used to be a DataError quoting the INSERT and its parameters.
    with pytest.raises(FieldTooLong) as err, session_scope(migrated) as s:
        repo.add_student(s, "s1", "x" * 201)
    message = str(err.value)
    assert message == "student name is too long (201 characters; at most 200)"
    assert "INSERT" not in message and "x" * 50 not in message
    with session_scope(migrated) as s:
        assert s.scalar(select(func.count()).select_from(Student)) == 0


def test_the_limit_is_the_column_length_on_both_databases(migrated: str) -> None:
    # Exactly at the limit is stored whole (characters, not bytes: utf8mb4 on MariaDB).
    name = "ñ" * 200
    with session_scope(migrated) as s:
        repo.add_student(s, "s2", name)
    with session_scope(migrated) as s:
        assert repo.get_student(s, "s2").name == name


def test_updates_are_checked_too_and_every_problem_is_named(migrated: str) -> None:
    with session_scope(migrated) as s:
        repo.add_course(s, "C1", "Course")
    with pytest.raises(FieldTooLong) as err, session_scope(migrated) as s:
        course = repo.get_course(s, "C1")
        course.name = "n" * 300
        course.room = "r" * 101
    assert "course name is too long (300 characters; at most 200)" in str(err.value)
    assert "course room is too long (101 characters; at most 100)" in str(err.value)
    with session_scope(migrated) as s:
        assert repo.get_course(s, "C1").name == "Course"
