"""Length limits of text columns, checked before anything reaches the database.

MariaDB refuses an over-long value with a ``DataError`` that quotes the SQL and its parameters
(SQLite stores it silently). Every ORM flush goes through ``check_lengths`` instead, so each
path that writes text (CLI, dashboard, CSV import, review reasons) gets the same clear
``FieldTooLong`` before any SQL is sent, on both databases. Limits come from the models'
own ``String(n)`` columns, so there is one source of truth.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, event, inspect
from sqlalchemy.orm import Session

# What a user calls a column, where its attribute name says it poorly.
LABELS = {
    ("students", "student_number"): "student id",
    ("students", "name"): "student name",
    ("students", "email"): "e-mail",
    ("courses", "code"): "course code",
    ("courses", "name"): "course name",
    ("instructors", "name"): "instructor name",
    ("users", "username"): "username",
    ("attendance_records", "override_reason"): "reason",
}


class FieldTooLong(ValueError):
    """A text value is longer than its column allows."""


def label(table: str, column: str) -> str:
    return LABELS.get((table, column), f"{table.rstrip('s').replace('_', ' ')} {column.replace('_', ' ')}")


def too_long(obj: Any) -> list[str]:
    """Messages for every text attribute of ``obj`` longer than its column."""
    mapper = inspect(obj).mapper
    problems = []
    for attr in mapper.column_attrs:
        col = attr.columns[0]
        length = getattr(col.type, "length", None)
        if not isinstance(col.type, String) or not length:
            continue
        value = getattr(obj, attr.key, None)
        if isinstance(value, str) and len(value) > length:
            problems.append(f"{label(mapper.local_table.name, col.name)} is too long "
                            f"({len(value)} characters; at most {length})")
    return problems


@event.listens_for(Session, "before_flush")
def check_lengths(session: Session, _context: Any, _instances: Any) -> None:
    problems = [p for obj in (*session.new, *session.dirty) for p in too_long(obj)]
    if problems:
        raise FieldTooLong("; ".join(dict.fromkeys(problems)))
