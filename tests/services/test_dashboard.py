"""Home's figures (``services.dashboard``) and the Trends services (``reports.trend_scope`` /
``trend_data`` / ``audit_export``) on SQLite and the real MariaDB.

The school of ``trust_world``: alice teaches A101 (S1, S2), bob teaches B202 (S2, S3); sessions
A_old (40 days ago: S1, S2 attended), A_new (an hour ago: S1 attended, S2 absent) and B_new (an
hour ago: S2, S3 attended). ``carol`` is an instructor without courses.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from trust_world import PASSWORD, World

from aas_core.db import session_scope
from aas_core.db.models import AuditLog, utcnow
from aas_core.services import dashboard, reports
from aas_core.services.auth import AuthUser, create_user, to_auth_user


@pytest.fixture
def carol(world: World) -> AuthUser:
    with session_scope(world.url) as s:
        return to_auth_user(s, create_user(s, "carol", PASSWORD, "instructor"))


def _today():  # type: ignore[no-untyped-def]
    """The day of the recent sessions (they started an hour ago)."""
    return (utcnow() - timedelta(hours=1)).date()


def _students(df) -> set[str]:  # type: ignore[no-untyped-def]
    return set(df["student_number"].dropna())


# --- Home ------------------------------------------------------------------------------------------

def test_home_figures_for_admin_and_instructors(world: World, carol: AuthUser) -> None:
    u = world.users
    admin = dashboard.home_figures(world.url, u["admin"], _today())
    assert (admin.n_courses, admin.n_students, len(admin.sessions), len(admin.records)) == (2, 3, 3, 6)
    assert admin.week["session_id"].nunique() == 2 and admin.week_rate == pytest.approx(3 / 4)
    assert admin.monday <= _today() <= admin.sunday and admin.monday.weekday() == 0

    alice = dashboard.home_figures(world.url, u["alice"], _today())
    assert (alice.n_courses, alice.n_students) == (1, 2)
    assert set(alice.sessions["course_code"]) == {"A101"} and len(alice.sessions) == 2
    assert set(alice.records["course_code"]) == {"A101"} and len(alice.records) == 4
    assert set(alice.week["session_id"]) == {world.sessions["A_new"]} and alice.week_rate == 0.5
    assert set(alice.summary["course_code"]) == {"A101"} and alice.at_risk["student_number"].tolist() == ["S2"]
    assert _students(alice.records) == {"S1", "S2"}, "a student only on bob's course is counted"

    bob = dashboard.home_figures(world.url, u["bob"], _today())
    assert (bob.n_courses, bob.n_students, len(bob.sessions)) == (1, 2, 1)
    assert set(bob.records["course_code"]) == {"B202"} and bob.at_risk.empty

    none = dashboard.home_figures(world.url, carol, _today())
    assert (none.n_courses, none.n_students) == (0, 0)
    assert none.sessions.empty and none.records.empty and none.week.empty and none.summary.empty
    assert none.week_rate is None and none.rate is None


def test_home_figures_for_a_student_are_their_own(world: World) -> None:
    me = dashboard.home_figures(world.url, world.users["s1"], _today())
    assert (me.n_courses, me.n_students) == (0, 0) and me.sessions.empty
    assert _students(me.records) == {"S1"} and len(me.records) == 2 and me.rate == 1.0
    s2 = dashboard.home_figures(world.url, world.users["s2"], _today())
    assert _students(s2.records) == {"S2"} and len(s2.records) == 3
    assert _students(s2.week) == {"S2"} and s2.week_rate == 0.5
    assert s2.at_risk["course_code"].tolist() == ["A101"] and _students(s2.summary) == {"S2"}


# --- Trends ----------------------------------------------------------------------------------------

def test_trend_scope_follows_the_roles(world: World, carol: AuthUser) -> None:
    u = world.users
    admin = reports.trend_scope(world.url, u["admin"])
    assert admin.course_codes == ["A101", "B202"] and len(admin.records) == 6
    alice = reports.trend_scope(world.url, u["alice"])
    assert alice.course_codes == ["A101"] and list(alice.course_ids) == ["A101"]
    assert set(alice.records["course_code"]) == {"A101"}
    s2 = reports.trend_scope(world.url, u["s2"])
    assert s2.course_codes == ["A101", "B202"] and s2.course_ids == {} and _students(s2.records) == {"S2"}
    nobody = reports.trend_scope(world.url, carol)
    assert nobody.course_codes == [] and nobody.records.empty


def test_trend_data_never_leaves_the_users_courses(world: World, carol: AuthUser) -> None:
    u = world.users
    start, end = _today() - timedelta(days=60), _today()
    d = reports.trend_data(world.url, u["alice"], ["A101", "B202"], start, end)
    assert set(d.records["course_code"]) == {"A101"} and len(d.records) == 4
    assert set(d.similarities["session_id"]) <= {world.sessions["A_old"], world.sessions["A_new"]}
    assert _students(d.similarities) == {"S1", "S2"}
    assert set(d.rates["course_code"]) == {"A101"} and set(d.summary["student_number"]) == {"S1", "S2"}
    # another course's student asked for by name: nothing
    assert reports.trend_data(world.url, u["alice"], ["A101", "B202"], start, end, student_number="S3").records.empty
    one = reports.trend_data(world.url, u["alice"], ["A101"], start, end, student_number="S1")
    assert _students(one.records) == {"S1"} and set(one.similarities["student_number"]) == {"S1"}
    # bob asking for alice's course, carol for anything
    b = reports.trend_data(world.url, u["bob"], ["A101"], start, end)
    assert b.records.empty and b.similarities.empty
    assert reports.trend_data(world.url, carol, ["A101", "B202"], start, end).records.empty
    # the date range
    recent = reports.trend_data(world.url, u["admin"], ["A101", "B202"], _today(), _today())
    assert set(recent.records["session_id"]) == {world.sessions["A_new"], world.sessions["B_new"]}


def test_trend_data_for_a_student_is_only_their_own(world: World) -> None:
    u = world.users
    start, end = _today() - timedelta(days=60), _today()
    d = reports.trend_data(world.url, u["s1"], ["A101", "B202"], start, end, student_number="S2")
    assert _students(d.records) == {"S1"} and len(d.records) == 2
    assert not d.similarities.empty and set(d.similarities["student_number"]) == {"S1"}, \
        "a student sees other people's (or unknown) faces"
    s2 = reports.trend_data(world.url, u["s2"], ["B202"], start, end)
    assert set(s2.records["course_code"]) == {"B202"} and _students(s2.records) == {"S2"}
    assert set(s2.similarities["student_number"]) == {"S2"}
    assert reports.trend_data(world.url, u["s2"], [], start, end).records.empty


def test_trends_download_is_audited(world: World) -> None:
    alice = world.users["alice"]
    reports.audit_export(world.url, alice, "csv", 4, courses=["A101"], start=str(_today()), end=str(_today()),
                         student=None)
    with session_scope(world.url) as s:
        row = s.scalars(select(AuditLog).where(AuditLog.action == "export")).one()
        assert (row.actor, row.target_type, row.target_id) == ("alice", "attendance", "csv")
        assert row.details == {"rows": 4, "courses": ["A101"], "start": str(_today()), "end": str(_today()),
                               "student": None}
