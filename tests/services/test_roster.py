"""Roster CSV parsing: every rule, one clear error per bad row, and the import into a course."""

from __future__ import annotations

from pathlib import Path

import pytest

from aas_core.db.models import Role
from aas_core.services.auth import AuthUser
from aas_core.services.roster import RosterFileError, apply_roster, parse_roster_csv

ADMIN = AuthUser(0, "root", Role.ADMIN)


def test_valid_file_with_and_without_email() -> None:
    p = parse_roster_csv(b"student_id,name,email\ns1,Ada Lovelace,ada@example.org\ns2,Alan Turing,\n")
    assert p.ok
    assert [(r.student_id, r.name, r.email, r.line) for r in p.rows] == [
        ("s1", "Ada Lovelace", "ada@example.org", 2), ("s2", "Alan Turing", None, 3)]


def test_email_column_is_optional_and_headers_are_forgiving() -> None:
    p = parse_roster_csv("\ufeffStudent ID , NAME\n s1 , Ada \n\n s2,Bob\n")
    assert p.ok
    assert [(r.student_id, r.name, r.line) for r in p.rows] == [("s1", "Ada", 2), ("s2", "Bob", 4)]


def test_semicolon_separated_excel_export_and_cp1252() -> None:
    data = "student_id;name;email\ns1;José Müller;j@x.org\n".encode("cp1252")
    p = parse_roster_csv(data)
    assert p.ok and p.rows[0].name == "José Müller"


def test_quoted_names_with_commas() -> None:
    p = parse_roster_csv('student_id,name\ns1,"Lovelace, Ada"\n')
    assert p.ok and p.rows[0].name == "Lovelace, Ada"


def test_each_bad_row_gets_its_own_error_with_line_number() -> None:
    text = ("student_id,name,email\n"
            "s1,Ada,ada@example.org\n"  # ok
            ",Nobody,\n"  # 3: empty id
            "s3,,\n"  # 4: empty name
            "s4,Bad Mail,not-an-email\n"  # 5
            "s1,Ada again,\n"  # 6: duplicate
            "s 7,Space Id,\n"  # 7: bad id characters
            "s8,Too,many,fields,here\n"  # 8: unquoted comma
            "s9,Fine,\n")
    p = parse_roster_csv(text)
    assert [r.student_id for r in p.rows] == ["s1", "s9"]
    msgs = {e.line: e.message for e in p.errors}
    assert set(msgs) == {3, 4, 5, 6, 7, 8}
    assert "student_id is empty" in msgs[3]
    assert "name is empty" in msgs[4]
    assert "not-an-email" in msgs[5]
    assert "already appears on line 2" in msgs[6]
    assert "may only contain" in msgs[7]
    assert "double quotes" in msgs[8]
    assert str(p.errors[0]).startswith("line 3:")


def test_too_long_values() -> None:
    p = parse_roster_csv(f"student_id,name\n{'x' * 65},Ada\ns2,{'n' * 201}\n")
    assert len(p.errors) == 2 and all("longer than" in e.message for e in p.errors)


@pytest.mark.parametrize(("data", "fragment"), [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (b"id,fullname\n1,Ada\n", "lacks column(s) student_id, name"),
    (b"student_id,name\n", "only a header"),
    (b"student_id,name,name\ns1,a,b\n", "repeats"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a CSV"),
])
def test_file_level_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(RosterFileError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_roster_csv(data)


def test_row_limit() -> None:
    body = "".join(f"s{i},N{i}\n" for i in range(11))
    with pytest.raises(RosterFileError, match="more than 10 rows"):
        parse_roster_csv("student_id,name\n" + body, max_rows=10)


def test_apply_roster_creates_and_enrolls(tmp_path: Path) -> None:
    from aas_core.db import init_db, repo, session_scope

    url = f"sqlite:///{tmp_path / 'r.db'}"
    init_db(url)
    with session_scope(url) as s:
        course = repo.add_course(s, "C1", "Course")
        repo.add_student(s, "s2", "Existing Name")
        p = parse_roster_csv("student_id,name\ns1,Ada\ns2,Other Name\n")
        res = apply_roster(s, course, p.rows, user=ADMIN)
        assert res.created == ["s1"] and sorted(res.added) == ["s1", "s2"]
        assert res.warnings and "kept that name" in res.warnings[0]
        again = apply_roster(s, course, p.rows, user=ADMIN)
        assert sorted(again.already) == ["s1", "s2"] and not again.created
        assert [x.student_number for x in repo.roster(s, course)] == ["s1", "s2"]
        assert not repo.get_student(s, "s1").has_consent  # consent is never implied by an import
