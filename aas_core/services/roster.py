"""Roster CSV import: ``student_id,name[,email]`` -> validated rows, with one clear error per bad row.

Parsing is pure (no database) so every rule is unit-tested; ``apply_roster`` writes the
valid rows through ``repo`` (students created when new, put on the course roster).

Accepted input: UTF-8 (with or without the BOM Excel writes) or Windows-1252, comma or
semicolon separated (European Excel exports use ``;``), header names case-insensitive with
spaces ignored (``Student ID`` = ``student_id``). Blank lines are skipped. Imported students
have **no** recorded consent: consent is given per student on the Students page.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from aas_core.db import repo
from aas_core.db.models import Course
from aas_core.services.auth import AuthUser, may_put_on_roster, require_course

REQUIRED = ("student_id", "name")
OPTIONAL = ("email",)
MAX_ROWS = 5000
MAX_BYTES = 2_000_000
# Column lengths of the ORM model (students.student_number / name / email).
MAX_LEN = {"student_id": 64, "name": 200, "email": 254}
_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
_ID = re.compile(r"^[A-Za-z0-9._\-/]+$")


class RosterFileError(ValueError):
    """The file as a whole cannot be used (not text, no header, missing columns)."""


@dataclass(frozen=True)
class RosterRow:
    line: int  # line number in the file (header = 1)
    student_id: str
    name: str
    email: str | None = None


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class RosterParse:
    rows: list[RosterRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if len(data) > MAX_BYTES:
        raise RosterFileError(f"file is {len(data) / 1e6:.1f} MB; a roster CSV is at most {MAX_BYTES / 1e6:.0f} MB")
    if b"\x00" in data[:4096]:
        raise RosterFileError("this is not a CSV text file (binary data found); export the sheet as CSV")
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise RosterFileError("cannot read the file as text (save it as CSV UTF-8)")


def _norm_header(h: str) -> str:
    return re.sub(r"[\s\-]+", "_", h.strip().lower())


def parse_roster_csv(data: bytes | str, *, max_rows: int = MAX_ROWS) -> RosterParse:
    """Validate a roster CSV. Raises ``RosterFileError`` for file-level problems; row problems
    are collected in ``RosterParse.errors`` (one per bad row, with its line number)."""
    text = _decode(data)
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise RosterFileError("the file is empty; expected a header line 'student_id,name[,email]'")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] | None = None
    header_line = 0
    out = RosterParse()
    seen: dict[str, int] = {}
    try:
        for raw in reader:
            line = reader.line_num
            if not any(c.strip() for c in raw):
                continue
            if header is None:
                header = [_norm_header(h) for h in raw]
                header_line = line
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    raise RosterFileError(
                        f"header (line {line}) lacks column(s) {', '.join(missing)}; "
                        f"expected 'student_id,name[,email]', found {','.join(raw)!r}")
                dup = sorted({h for h in header if h and header.count(h) > 1})
                if dup:
                    raise RosterFileError(f"header (line {line}) repeats column(s) {', '.join(dup)}")
                continue
            if len(out.rows) + len(out.errors) >= max_rows:
                raise RosterFileError(f"more than {max_rows} rows; split the file")
            if len(raw) > len(header) and any(c.strip() for c in raw[len(header):]):
                out.errors.append(RowError(line, f"{len(raw)} fields but the header has {len(header)} "
                                                 "(a name containing a comma must be in double quotes)"))
                continue
            values = {h: (raw[i].strip() if i < len(raw) else "") for i, h in enumerate(header)}
            problems = []
            sid, name, email = values.get("student_id", ""), values.get("name", ""), values.get("email", "")
            if not sid:
                problems.append("student_id is empty")
            elif not _ID.match(sid):
                problems.append(f"student_id {sid!r} may only contain letters, digits and . _ - /")
            if not name:
                problems.append("name is empty")
            if email and not _EMAIL.match(email):
                problems.append(f"email {email!r} is not an e-mail address")
            for col, val in (("student_id", sid), ("name", name), ("email", email)):
                if len(val) > MAX_LEN[col]:
                    problems.append(f"{col} is longer than {MAX_LEN[col]} characters")
            if sid and sid in seen:
                problems.append(f"student_id {sid!r} already appears on line {seen[sid]}")
            if problems:
                out.errors.append(RowError(line, "; ".join(problems)))
                continue
            seen[sid] = line
            out.rows.append(RosterRow(line, sid, name, email or None))
    except csv.Error as exc:
        raise RosterFileError(f"line {reader.line_num}: malformed CSV ({exc})") from None
    if header is None:
        raise RosterFileError("the file is empty; expected a header line 'student_id,name[,email]'")
    if not out.rows and not out.errors:
        raise RosterFileError(f"only a header (line {header_line}); no students listed")
    return out


@dataclass
class RosterImport:
    created: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # put on the roster (new or existing students)
    already: list[str] = field(default_factory=list)  # were on the roster already
    refused: list[str] = field(default_factory=list)  # existing students this user may not add
    warnings: list[str] = field(default_factory=list)


def apply_roster(s: Session, course: Course, rows: list[RosterRow], *, user: AuthUser) -> RosterImport:
    """Create missing students and put every row on ``course``'s roster (one transaction: caller's).

    An id that already exists is added only when ``user`` may put that student on the roster
    (``auth.may_put_on_roster``); otherwise the row is refused with a message that names no one
    (neither the student's name nor their other courses).
    """
    require_course(user, course)
    actor = user.username
    result = RosterImport()
    for r in rows:
        st = repo.find_student(s, r.student_id)
        if st is None:
            st = repo.add_student(s, r.student_id, r.name, email=r.email, consent=False, actor=actor)
            result.created.append(r.student_id)
        elif not may_put_on_roster(user, st, course):
            result.refused.append(r.student_id)
            result.warnings.append(f"line {r.line}: {r.student_id} is already registered by another course; "
                                   "ask an administrator to add this student to your roster")
            continue
        elif st.name != r.name:
            result.warnings.append(f"line {r.line}: {r.student_id} exists as {st.name!r}; kept that name")
        if repo.enroll_in_course(s, course, st, actor=actor):
            result.added.append(r.student_id)
        else:
            result.already.append(r.student_id)
    return result
