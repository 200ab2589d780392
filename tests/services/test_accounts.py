"""Accounts and sign-in (issue 13, items 7-9) on SQLite and the real MariaDB.

* server-side sessions: a one-time ticket becomes a cookie token once (also under a race), only
  hashes are stored, idle and absolute expiry, sign-out / disable / reset / role change end them,
  an account changed behind the services' back ends them too;
* the first administrator is created once, also when two requests race;
* account management: admins only, audited, temporary passwords that must be replaced, the last
  active administrator stays (also when two admins disable each other at once);
* single sign-on maps a verified identity to an existing account and never creates one;
* ``aas user ...`` goes through the same service.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text, update

from aas_core.db import repo, session_scope
from aas_core.db.engine import get_engine
from aas_core.db.models import AuditLog, Role, Student, User, UserSession, utcnow
from aas_core.services import accounts, auth, in_transaction
from aas_core.services.auth import (
    AccessDenied,
    AuthUser,
    NoAccount,
    SessionEnded,
    SessionPolicy,
    create_user,
    end_session,
    password_sign_in,
    redeem_ticket,
    session_user,
    sso_sign_in,
    to_auth_user,
)

ROOT = Path(__file__).resolve().parents[2]
GOOD = "plum-orbit-lantern-42"  # noqa: S105 - passes the password policy
OTHER = "velvet canyon drums 7"  # noqa: S105
ISS = "http://localhost:9999"


@pytest.fixture(autouse=True)
def _fast_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Light argon2 parameters (the real hasher is checked in test_auth.py); no leftover limits."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    auth.SIGN_IN_LIMITS.reset()


def _user(url: str, username: str, role: Role | str = Role.ADMIN, **kw) -> AuthUser:  # type: ignore[no-untyped-def]
    with session_scope(url) as s:
        u = create_user(s, username, kw.pop("password", GOOD), role, **kw)
        s.flush()
        return to_auth_user(s, u)


def _signed_in(url: str, username: str, password: str = GOOD, client: str | None = None,
               policy: SessionPolicy | None = None) -> tuple[AuthUser, str]:
    """Sign in as the dashboard does: (user with its session, the cookie token)."""
    ticket = in_transaction(url, password_sign_in, username, password, client=client, policy=policy)
    assert ticket is not None
    token = in_transaction(url, redeem_ticket, ticket.ticket, client=client)
    assert token is not None
    return ticket.user, token


def _check(url: str, token: str, policy: SessionPolicy | None = None) -> AuthUser:
    return in_transaction(url, session_user, token=token, policy=policy)


def _ended(url: str, token: str, policy: SessionPolicy | None = None) -> str:
    with pytest.raises(SessionEnded) as exc:
        _check(url, token, policy)
    return str(exc.value)


def _dump(url: str) -> str:
    eng = get_engine(url)
    out = []
    with eng.connect() as c:
        for table in inspect(eng).get_table_names():
            out += [repr(tuple(r)) for r in c.execute(text(f"SELECT * FROM {table}"))]
    return "\n".join(out)


def _actions(url: str) -> list[tuple[str, str, str | None]]:
    with session_scope(url) as s:
        return [(a.actor, a.action, a.target_id) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]


# --- server-side sessions ----------------------------------------------------------------------------

def test_a_ticket_becomes_a_cookie_token_once_and_only_hashes_are_stored(migrated: str) -> None:
    url = migrated
    _user(url, "boss")
    ticket = in_transaction(url, password_sign_in, "boss", GOOD, client="10.0.0.7")
    assert ticket is not None and ticket.user.session_id is not None and ticket.ticket not in repr(ticket)
    assert in_transaction(url, redeem_ticket, ticket.ticket, client="10.0.0.8") is None  # another client
    token = in_transaction(url, redeem_ticket, ticket.ticket, client="10.0.0.7")
    assert token and token != ticket.ticket
    assert in_transaction(url, redeem_ticket, ticket.ticket, client="10.0.0.7") is None  # used up
    user = _check(url, token)
    assert (user.username, user.session_id) == ("boss", ticket.user.session_id)
    dump = _dump(url)
    assert token not in dump and ticket.ticket not in dump and GOOD not in dump
    assert auth.token_digest(token) in dump  # what is stored is the digest
    assert ("boss", "user.sign_in", "boss") in _actions(url)


def test_two_racing_redemptions_of_one_ticket_give_one_token(migrated: str) -> None:
    url = migrated
    _user(url, "boss")
    for _ in range(3):
        ticket = in_transaction(url, password_sign_in, "boss", GOOD)
        assert ticket is not None
        barrier, got = threading.Barrier(4), []

        def redeem(t: str = ticket.ticket) -> None:
            barrier.wait()
            try:
                got.append(in_transaction(url, redeem_ticket, t))
            except Exception as exc:  # noqa: BLE001 - a lock timeout is a refusal too
                got.append(exc)

        threads = [threading.Thread(target=redeem) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        tokens = [g for g in got if isinstance(g, str)]
        assert len(got) == 4 and len(tokens) == 1, got


def test_an_old_ticket_is_refused(migrated: str) -> None:
    url = migrated
    _user(url, "boss")
    ticket = in_transaction(url, password_sign_in, "boss", GOOD)
    assert ticket is not None
    with session_scope(url) as s:
        s.execute(update(UserSession).values(ticket_expires_at=utcnow() - timedelta(seconds=1)))
    assert in_transaction(url, redeem_ticket, ticket.ticket) is None
    assert in_transaction(url, redeem_ticket, "") is None and in_transaction(url, redeem_ticket, "x" * 500) is None


def test_idle_and_absolute_expiry(migrated: str) -> None:
    url = migrated
    _user(url, "boss")
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=8))
    _, idle_token = _signed_in(url, "boss", policy=policy)
    _, old_token = _signed_in(url, "boss", policy=policy)
    assert _check(url, idle_token, policy).username == "boss"
    with session_scope(url) as s:
        s.execute(update(UserSession).where(UserSession.token_hash == auth.token_digest(idle_token))
                  .values(last_seen_at=utcnow() - timedelta(minutes=31)))
        # in use all the time, but signed in more than 8 hours ago
        s.execute(update(UserSession).where(UserSession.token_hash == auth.token_digest(old_token))
                  .values(last_seen_at=utcnow(), expires_at=utcnow() - timedelta(seconds=1)))
    assert _ended(url, idle_token, policy) == auth.IDLE
    assert _ended(url, idle_token, policy) == auth.IDLE  # and it stays over (revoked)
    assert _ended(url, old_token, policy) == auth.EXPIRED
    assert _ended(url, "no-such-token") == auth.EXPIRED


def test_a_page_run_keeps_a_session_alive_but_writes_last_seen_at_most_every_30_s(migrated: str) -> None:
    url = migrated
    _user(url, "boss")
    _, token = _signed_in(url, "boss")
    h = auth.token_digest(token)
    with session_scope(url) as s:
        s.execute(update(UserSession).where(UserSession.token_hash == h).values(last_seen_at=utcnow() - timedelta(seconds=10)))
    _check(url, token)
    with session_scope(url) as s:
        seen = s.scalar(select(UserSession.last_seen_at).where(UserSession.token_hash == h))
        assert utcnow() - seen >= timedelta(seconds=9)  # not written: younger than 30 s
        s.execute(update(UserSession).where(UserSession.token_hash == h).values(last_seen_at=utcnow() - timedelta(minutes=5)))
    _check(url, token)
    with session_scope(url) as s:
        assert utcnow() - s.scalar(select(UserSession.last_seen_at).where(UserSession.token_hash == h)) < timedelta(seconds=5)


def test_sign_out_ends_that_session_only(migrated: str) -> None:
    url = migrated
    _user(url, "boss")
    _, tab_a = _signed_in(url, "boss")
    _, other_browser = _signed_in(url, "boss")
    assert in_transaction(url, end_session, token=tab_a)
    assert _ended(url, tab_a) == auth.SIGNED_OUT  # every tab holding this cookie
    assert _check(url, other_browser).username == "boss"  # another browser's sign-in goes on
    assert not in_transaction(url, end_session, token=tab_a)


@pytest.mark.parametrize("change", ["disable", "reset", "role", "sql-role", "sql-password", "erase"])
def test_account_changes_end_every_session(migrated: str, change: str) -> None:
    url = migrated
    admin = _user(url, "boss")
    _user(url, "prof", Role.INSTRUCTOR)
    _, token = _signed_in(url, "prof")
    _, token2 = _signed_in(url, "prof")
    if change == "disable":
        accounts.set_active(url, admin, "prof", False)
    elif change == "reset":
        accounts.reset_password(url, admin, "prof")
    elif change == "role":
        accounts.change_role(url, admin, "prof", Role.ADMIN)
    else:
        with session_scope(url) as s:  # behind the services' back: the stamp no longer matches
            u = s.scalar(select(User).where(User.username == "prof"))
            if change == "sql-role":
                u.role = Role.STUDENT
            elif change == "sql-password":
                u.password_hash = auth._hasher.hash(OTHER)
            else:
                s.delete(u)
    # an erased account takes its session rows with it (ON DELETE CASCADE): no row, "expired"
    expected = auth.EXPIRED if change == "erase" else auth.CHANGED
    assert _ended(url, token) == expected
    assert _ended(url, token2) == expected


# --- first run ------------------------------------------------------------------------------------

def test_the_first_administrator_is_created_once(migrated: str) -> None:
    url = migrated
    assert accounts.first_run_needed(url)
    ticket = accounts.create_first_admin(url, "root", GOOD, email="Root@School.example")
    assert ticket.user.is_admin and ticket.user.session_id is not None
    assert in_transaction(url, redeem_ticket, ticket.ticket)  # signed in straight away
    assert not accounts.first_run_needed(url)
    with pytest.raises(accounts.AlreadySetUp):
        accounts.create_first_admin(url, "intruder", OTHER)
    with session_scope(url) as s:
        assert [(u.username, u.role, u.email) for u in s.scalars(select(User))] == [
            ("root", Role.ADMIN, "root@school.example")]
    assert ("first-run", "user.first_admin", "root") in _actions(url)


def test_the_first_run_refuses_once_any_account_exists(migrated: str) -> None:
    _user(migrated, "made-by-cli")  # `aas user add` got there first
    with pytest.raises(accounts.AlreadySetUp):
        accounts.create_first_admin(migrated, "root", GOOD)


def test_two_browsers_racing_through_the_first_run_create_one_administrator(migrated: str) -> None:
    url = migrated
    barrier, results = threading.Barrier(4), []

    def first(name: str) -> None:
        barrier.wait()
        try:
            results.append(accounts.create_first_admin(url, name, GOOD))
        except accounts.AlreadySetUp as exc:
            results.append(exc)

    threads = [threading.Thread(target=first, args=(f"admin{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert len(results) == 4
    assert sum(isinstance(r, auth.Ticket) for r in results) == 1, results
    with session_scope(url) as s:
        assert s.scalar(select(text("COUNT(*)")).select_from(User)) == 1


# --- account management -------------------------------------------------------------------------------

def test_only_administrators_manage_accounts(migrated: str) -> None:
    url = migrated
    _user(url, "boss")
    prof = _user(url, "prof", Role.INSTRUCTOR)
    for call in (lambda: accounts.list_accounts(url, prof),
                 lambda: accounts.create_account(url, prof, "x", Role.ADMIN),
                 lambda: accounts.reset_password(url, prof, "boss"),
                 lambda: accounts.set_active(url, prof, "boss", False),
                 lambda: accounts.change_role(url, prof, "prof", Role.ADMIN),
                 lambda: accounts.link_student(url, prof, "prof", None),
                 lambda: accounts.set_email(url, prof, "boss", "a@b.example")):
        with pytest.raises(AccessDenied):
            call()
    with session_scope(url) as s:
        assert s.scalar(select(User).where(User.username == "prof")).role == Role.INSTRUCTOR


def test_a_new_account_gets_a_temporary_password_it_must_replace(migrated: str) -> None:
    url = migrated
    admin = _user(url, "boss")
    acct, temp = accounts.create_account(url, admin, "prof", Role.INSTRUCTOR, name="Prof. X", email="x@uni.example")
    assert temp and acct.must_change_password and acct.instructor_name == "Prof. X" and acct.password_sign_in
    user, token = _signed_in(url, "prof", temp)
    assert user.must_change_password and _check(url, token).must_change_password
    with pytest.raises(AccessDenied, match="current password is wrong"):
        accounts.change_own_password(url, user, "not-it", OTHER)
    with pytest.raises(auth.WeakPassword, match="differ"):
        accounts.change_own_password(url, user, temp, temp)
    with pytest.raises(auth.WeakPassword):
        accounts.change_own_password(url, user, temp, "short")
    _, other_tab = _signed_in(url, "prof", temp)
    accounts.change_own_password(url, user, temp, OTHER)
    fresh = _check(url, token)  # this session goes on, without the forced change
    assert fresh.username == "prof" and not fresh.must_change_password
    assert _ended(url, other_tab) == auth.CHANGED  # the other one ended
    assert in_transaction(url, password_sign_in, "prof", temp) is None
    assert temp not in _dump(url) and OTHER not in _dump(url)
    acts = _actions(url)
    assert ("boss", "user.create", "prof") in acts and ("prof", "user.password", "prof") in acts


def test_a_reset_password_must_be_replaced(migrated: str) -> None:
    url = migrated
    admin = _user(url, "boss")
    _user(url, "prof", Role.INSTRUCTOR)
    temp = accounts.reset_password(url, admin, "prof")
    assert len(temp) == 19 and in_transaction(url, password_sign_in, "prof", GOOD) is None
    user, _ = _signed_in(url, "prof", temp)
    assert user.must_change_password
    assert ("boss", "user.password", "prof") in _actions(url)


def test_an_sso_only_account_refuses_every_password(migrated: str) -> None:
    url = migrated
    admin = _user(url, "boss")
    acct, temp = accounts.create_account(url, admin, "ada", Role.INSTRUCTOR, sso_only=True, email="ada@uni.example")
    assert temp is None and not acct.password_sign_in
    with session_scope(url) as s:
        assert s.scalar(select(User.password_hash).where(User.username == "ada")) == auth.NO_PASSWORD
    for guess in ("", auth.NO_PASSWORD, GOOD):
        assert in_transaction(url, password_sign_in, "ada", guess) is None
    with pytest.raises(ValueError, match="e-mail"):
        accounts.create_account(url, admin, "bob", Role.INSTRUCTOR, sso_only=True)


def test_the_last_active_administrator_stays(migrated: str) -> None:
    url = migrated
    boss = _user(url, "boss")
    with pytest.raises(ValueError, match="your own account"):
        accounts.set_active(url, boss, "boss", False)
    with pytest.raises(accounts.LastAdmin, match="last active administrator"):
        accounts.change_role(url, boss, "boss", Role.INSTRUCTOR)
    from aas_core.cli.common import CLI_ADMIN

    with pytest.raises(accounts.LastAdmin):
        accounts.set_active(url, CLI_ADMIN, "boss", False)
    _user(url, "deputy")
    accounts.set_active(url, boss, "deputy", False)  # one admin left: boss
    with pytest.raises(accounts.LastAdmin):
        accounts.change_role(url, CLI_ADMIN, "boss", Role.STUDENT, student_number="S1")
    accounts.set_active(url, boss, "deputy", True)
    accounts.change_role(url, boss, "boss", Role.INSTRUCTOR)  # deputy is still an admin
    with session_scope(url) as s:
        assert {u.username: (u.role, u.is_active) for u in s.scalars(select(User))} == {
            "boss": (Role.INSTRUCTOR, True), "deputy": (Role.ADMIN, True)}


def test_two_administrators_disabling_each_other_at_once_leave_one(migrated: str) -> None:
    url = migrated
    a, b = _user(url, "head1"), _user(url, "head2")
    _user(url, "teacher", Role.INSTRUCTOR)
    for _ in range(3):
        barrier, results = threading.Barrier(2), []

        def act(actor: AuthUser, target: str) -> None:
            barrier.wait()
            try:
                results.append(accounts.set_active(url, actor, target, False))
            except Exception as exc:  # noqa: BLE001 - LastAdmin, or the database's lock refusal
                results.append(exc)

        threads = [threading.Thread(target=act, args=(a, "head2")), threading.Thread(target=act, args=(b, "head1"))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        with session_scope(url) as s:
            active = s.scalars(select(User.username).where(User.role == Role.ADMIN, User.is_active.is_(True))).all()
        assert len(active) >= 1, results
        from aas_core.cli.common import CLI_ADMIN

        for name in ("head1", "head2"):
            accounts.set_active(url, CLI_ADMIN, name, True)


def test_roles_and_student_links(migrated: str) -> None:
    url = migrated
    admin = _user(url, "boss")
    with session_scope(url) as s:
        repo.add_student(s, "S1", "Sam One")
        repo.add_student(s, "S2", "Sue Two")
    acct, temp = accounts.create_account(url, admin, "sam", Role.STUDENT, student_number="S1")
    assert temp is not None
    assert acct.student_number == "S1"
    assert accounts.linkable_students(url, admin) == [("S2", "Sue Two")]
    with pytest.raises(repo.AlreadyExists):
        accounts.create_account(url, admin, "sam2", Role.STUDENT, student_number="S1")
    assert accounts.link_student(url, admin, "sam", "S2").student_number == "S2"
    assert accounts.linkable_students(url, admin) == [("S1", "Sam One")]
    user, token = _signed_in(url, "sam", temp)
    assert user.student_number == "S2"
    acct = accounts.change_role(url, admin, "sam", Role.INSTRUCTOR)
    assert acct.role == Role.INSTRUCTOR and acct.student_number is None and acct.instructor_name == "sam"
    assert _ended(url, token) == auth.CHANGED
    with pytest.raises(ValueError, match="student id"):
        accounts.change_role(url, admin, "sam", Role.STUDENT)
    with pytest.raises(ValueError, match="not a student account"):
        accounts.link_student(url, admin, "sam", "S1")
    assert accounts.change_role(url, admin, "sam", Role.STUDENT, student_number="S1").student_number == "S1"
    with session_scope(url) as s:
        assert s.scalar(select(Student.user_id).where(Student.student_number == "S2")) is None
    acts = [a for a in _actions(url) if a[1] in ("user.role", "user.link_student")]
    assert acts == [("boss", "user.link_student", "sam"), ("boss", "user.role", "sam"), ("boss", "user.role", "sam")]


def test_emails_are_one_address_in_any_case(migrated: str) -> None:
    url = migrated
    admin = _user(url, "boss", email="Boss@Uni.Example")
    with pytest.raises(repo.AlreadyExists):
        accounts.create_account(url, admin, "copy", Role.INSTRUCTOR, email="boss@uni.example ")
    with pytest.raises(ValueError, match="not an e-mail"):
        accounts.create_account(url, admin, "x", Role.INSTRUCTOR, email="not an address")
    assert accounts.set_email(url, admin, "boss", "NEW@uni.example").email == "new@uni.example"


# --- single sign-on -------------------------------------------------------------------------------------

def _claims(sub: str, email: str | None = None, verified: bool | None = True, iss: str = ISS) -> dict:
    c: dict = {"iss": iss, "sub": sub, "is_logged_in": True}
    if email is not None:
        c["email"] = email
    if verified is not None:
        c["email_verified"] = verified
    return c


def test_sso_links_a_verified_email_once_and_then_follows_the_subject(migrated: str) -> None:
    url = migrated
    admin = _user(url, "boss")
    accounts.create_account(url, admin, "ada", Role.INSTRUCTOR, sso_only=True, email="ada@uni.example")
    ticket = in_transaction(url, sso_sign_in, _claims("sub-ada", "ADA@uni.example"))
    assert ticket.user.username == "ada" and ticket.user.role == Role.INSTRUCTOR
    assert in_transaction(url, redeem_ticket, ticket.ticket)
    # the provider changes her e-mail: the subject still signs in to her account
    assert in_transaction(url, sso_sign_in, _claims("sub-ada", "ada.lovelace@uni.example")).user.username == "ada"
    # someone who later gets her old address at the provider does not get her account
    with pytest.raises(NoAccount, match="no AAS account for ada@uni.example"):
        in_transaction(url, sso_sign_in, _claims("sub-newcomer", "ada@uni.example"))
    assert ("sso", "user.sso_link", "ada") in _actions(url)


def test_sso_never_creates_an_account_and_refuses_unverified_and_disabled(migrated: str) -> None:
    url = migrated
    admin = _user(url, "boss", email="boss@uni.example")
    accounts.create_account(url, admin, "ada", Role.INSTRUCTOR, sso_only=True, email="ada@uni.example")
    with session_scope(url) as s:
        before = s.scalar(select(text("COUNT(*)")).select_from(User))
    with pytest.raises(NoAccount, match="no AAS account for mallory@evil.example. Ask an administrator"):
        in_transaction(url, sso_sign_in, _claims("m", "mallory@evil.example"))
    for verified in (False, None):  # an unverified (or unstated) e-mail links nothing
        with pytest.raises(NoAccount):
            in_transaction(url, sso_sign_in, _claims("x", "boss@uni.example", verified))
    with pytest.raises(NoAccount):
        in_transaction(url, sso_sign_in, _claims("y", "ada@uni.example"), link_by_email=False)
    with pytest.raises(NoAccount, match="did not say who"):
        in_transaction(url, sso_sign_in, {"email": "ada@uni.example", "email_verified": True})
    accounts.set_active(url, admin, "ada", False)
    with pytest.raises(NoAccount, match="disabled"):
        in_transaction(url, sso_sign_in, _claims("sub-ada", "ada@uni.example"))
    with session_scope(url) as s:
        assert s.scalar(select(text("COUNT(*)")).select_from(User)) == before
        assert s.scalar(select(User.oidc_subject).where(User.username == "boss")) is None


# --- command line -------------------------------------------------------------------------------------

def _aas(url: str, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AAS_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("AAS_NEW_PASSWORD", None)
    if password:
        env["AAS_NEW_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "aas_core.cli", "user", *args], env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_the_user_commands(migrated: str) -> None:
    url = migrated
    assert _aas(url, "add", "boss", "--role", "admin", password=GOOD).returncode == 0
    r = _aas(url, "add", "ada", "--role", "instructor", "--email", "ada@uni.example", "--sso-only")
    assert r.returncode == 0, r.stderr
    r = _aas(url, "disable", "boss")
    assert r.returncode == 1 and "last active administrator" in r.stderr and "Traceback" not in r.stderr
    r = _aas(url, "reset", "ada")
    assert r.returncode == 0 and "temporary password: " in r.stdout
    temp = r.stdout.split("temporary password: ")[1].strip()
    user, _ = _signed_in(url, "ada", temp)
    assert user.must_change_password
    assert _aas(url, "role", "ada", "admin").returncode == 0
    assert _aas(url, "disable", "boss").returncode == 0  # ada is an admin now
    r = _aas(url, "list", "--json")
    import json

    rows = {a["username"]: a for a in json.loads(r.stdout)}
    assert rows["boss"]["active"] is False and rows["ada"]["role"] == "admin" and rows["ada"]["email"] == "ada@uni.example"
    assert temp not in _dump(url)


# --- the cookie routes (aas_core/ui/routes.py) through Starlette's test client --------------------------

def test_the_cookie_routes(migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from aas_core.ui import routes

    url = migrated
    _user(url, "boss")
    conf = SimpleNamespace(database_url=url, session_cookie_secure="auto", session_idle_minutes=60.0,
                           session_max_hours=12.0)
    monkeypatch.setattr(routes, "_settings", lambda: conf)
    app = Starlette(routes=routes.session_routes())

    def ticket() -> str:
        t = in_transaction(url, password_sign_in, "boss", GOOD)
        assert t is not None
        return t.ticket

    with TestClient(app, base_url="http://aas.school.example", follow_redirects=False) as web:
        t = ticket()
        # another site's page cannot redeem a ticket (login CSRF), and the attempt does not use it up
        r = web.get(routes.START_PATH, params={"ticket": t}, headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = web.get(routes.START_PATH, params={"ticket": t, "next": "//evil.example/x"},
                    headers={"sec-fetch-site": "same-origin"})
        assert r.status_code == 303 and r.headers["location"] == "/"  # never off-site
        assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
        cookie = r.headers["set-cookie"]
        # plain HTTP on a non-loopback host: no Secure flag possible (the sign-in page warns)
        assert cookie.startswith("aas_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie and "Max-Age=43200" in cookie
        token = cookie.split(";")[0].split("=", 1)[1]
        assert _check(url, token).username == "boss"
        r = web.get(routes.START_PATH, params={"ticket": t})  # used up: no cookie, to the sign-in page
        assert r.status_code == 303 and "set-cookie" not in r.headers
        r = web.get(routes.START_PATH, params={"ticket": ticket(), "next": "/live_session"})
        assert r.headers["location"] == "/live_session"
        # sign-out: the session is revoked server-side and the cookies are deleted
        web.cookies.set("aas_session", token)
        web.cookies.set("_streamlit_user", "x")
        r = web.get(routes.END_PATH, headers={"sec-fetch-site": "same-origin"})
        deleted = r.headers.get_list("set-cookie")
        assert any(c.startswith('aas_session=""') for c in deleted) and any(c.startswith("_streamlit_user=") for c in deleted)
        assert _ended(url, token) == auth.SIGNED_OUT
    conf.session_cookie_secure = "always"  # behind a TLS-terminating proxy
    with TestClient(app, base_url="http://aas.school.example", follow_redirects=False) as web:
        cookie = web.get(routes.START_PATH, params={"ticket": ticket()}).headers["set-cookie"]
        assert cookie.startswith("__Host-aas_session=") and "Secure" in cookie and "Path=/" in cookie
