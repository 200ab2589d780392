"""Sign-in guards (issue 10, points 8 and 9), on SQLite and the real MariaDB where a database is read.

* failed sign-ins are limited per username and per client, in a moving window, before any hash;
* at most ``HASH_CONCURRENCY`` argon2 computations run at once, and a caller that cannot get a
  slot in time is told the server is busy;
* every new password (create_user, set_password, ``aas user add/passwd``) passes the policy;
* ``still_valid`` ends a session whose account was disabled, erased, demoted or re-passworded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from aas_core.db import repo, session_scope
from aas_core.db.models import AuditLog, Instructor, Role, User
from aas_core.services import auth
from aas_core.services.auth import (
    ServerBusy,
    SignInLimits,
    SignInThrottled,
    WeakPassword,
    authenticate,
    check_password,
    create_user,
    set_password,
    still_valid,
    to_auth_user,
)

ROOT = Path(__file__).resolve().parents[2]
GOOD = "plum-orbit-lantern-42"  # noqa: S105 - test password that passes the policy
OTHER_GOOD = "velvet canyon drums 7"  # noqa: S105


class CountingHasher:
    """Wraps the real hasher and counts calls: a refused attempt must not reach argon2 at all."""

    def __init__(self) -> None:
        self.real = auth._hasher
        self.calls = 0

    def hash(self, password: str) -> str:
        self.calls += 1
        return self.real.hash(password)

    def verify(self, h: str, password: str) -> bool:
        self.calls += 1
        return self.real.verify(h, password)

    def check_needs_rehash(self, h: str) -> bool:
        return self.real.check_needs_rehash(h)


def _user(url: str, name: str, role: Role | str = Role.INSTRUCTOR, password: str = GOOD) -> None:
    with session_scope(url) as s:
        create_user(s, name, password, role)


def _try(url: str, name: str, password: str, limits: SignInLimits, client: str | None = None) -> auth.AuthUser | None:
    with session_scope(url) as s:
        return authenticate(s, name, password, client=client, limits=limits)


# --- rate limits --------------------------------------------------------------------------------

def test_sixth_failure_for_a_username_is_refused_without_hashing_even_with_the_right_password(
        migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _user(migrated, "dana")
    limits = SignInLimits()
    counting = CountingHasher()
    monkeypatch.setattr(auth, "_hasher", counting)
    for _ in range(5):
        assert _try(migrated, "dana", "not-the-password", limits) is None
    assert counting.calls == 5
    with pytest.raises(SignInThrottled) as err:
        _try(migrated, "dana", GOOD, limits)
    assert counting.calls == 5, "a throttled attempt reached the hasher"
    msg = str(err.value)
    assert "wait 15 minutes" in msg, msg
    assert "dana" not in msg
    # other spellings of the same name share the budget (MariaDB compares usernames case-insensitively)
    with pytest.raises(SignInThrottled):
        _try(migrated, " DANA ", GOOD, limits)


def test_unknown_usernames_are_throttled_with_the_same_message(migrated: str) -> None:
    _user(migrated, "erin")
    limits = SignInLimits()
    for name in ("erin", "nobody-here"):
        for _ in range(5):
            assert _try(migrated, name, "not-the-password", limits) is None
    messages = []
    for name in ("erin", "nobody-here"):
        with pytest.raises(SignInThrottled) as err:
            _try(migrated, name, "not-the-password", limits)
        messages.append(str(err.value))
    assert messages[0] == messages[1]  # nothing tells whether the account exists


def test_sign_in_works_again_after_the_window(migrated: str) -> None:
    _user(migrated, "fay")
    limits = SignInLimits(per_username="2 per 1 second", per_client="100 per 1 second")
    for _ in range(2):
        assert _try(migrated, "fay", "not-the-password", limits) is None
    with pytest.raises(SignInThrottled) as err:
        _try(migrated, "fay", GOOD, limits)
    assert "seconds" in str(err.value)
    time.sleep(1.2)
    assert _try(migrated, "fay", GOOD, limits) is not None


def test_a_success_clears_the_username_count(migrated: str) -> None:
    _user(migrated, "gus")
    limits = SignInLimits()
    for _ in range(4):
        assert _try(migrated, "gus", "not-the-password", limits) is None
    assert _try(migrated, "gus", GOOD, limits) is not None
    for _ in range(4):  # without the reset the 6th failure overall would be refused here
        assert _try(migrated, "gus", "not-the-password", limits) is None


def test_the_client_limit_covers_every_username(migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _user(migrated, "hal")
    limits = SignInLimits(per_username="5 per 15 minutes", per_client="6 per 15 minutes")
    counting = CountingHasher()
    monkeypatch.setattr(auth, "_hasher", counting)
    for i in range(6):  # six different names, one failure each: no username limit is reached
        assert _try(migrated, f"guess{i}", "not-the-password", limits, client="203.0.113.9") is None
    with pytest.raises(SignInThrottled):
        _try(migrated, "hal", GOOD, limits, client="203.0.113.9")
    assert counting.calls == 6
    # another client is not affected; the same user from there signs in
    assert _try(migrated, "hal", GOOD, limits, client="198.51.100.4") is not None


# --- bounded argon2 --------------------------------------------------------------------------------

class SlowHasher:
    """A fake hasher that records how many calls run at the same time."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.running = 0
        self.peak = 0
        self.lock = threading.Lock()

    def _work(self) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1

    def hash(self, password: str) -> str:
        self._work()
        return "$fake$"

    def verify(self, h: str, password: str) -> bool:
        self._work()
        raise auth.VerificationError("no")


def _burst(url: str, n: int) -> list[object]:
    limits = SignInLimits(per_username="1000 per 1 minute", per_client="1000 per 1 minute")
    results: list[object] = []
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait()
        try:
            results.append(_try(url, f"burst{i}", "whatever-it-is", limits))
        except Exception as exc:  # noqa: BLE001 - collected and asserted on
            results.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_at_most_two_argon2_computations_run_at_once(migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = SlowHasher(0.15)
    monkeypatch.setattr(auth, "_hasher", slow)
    results = _burst(migrated, 8)
    assert results == [None] * 8  # every one answered (unknown users), none refused as busy
    assert slow.peak == auth.HASH_CONCURRENCY == 2


def test_a_burst_beyond_the_wait_is_told_the_server_is_busy(migrated: str, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = SlowHasher(0.5)
    monkeypatch.setattr(auth, "_hasher", slow)
    monkeypatch.setattr(auth, "HASH_WAIT_S", 0.2)
    results = _burst(migrated, 6)
    busy = [r for r in results if isinstance(r, ServerBusy)]
    assert len(busy) == 4 and results.count(None) == 2, results
    assert "busy" in str(busy[0]) and slow.peak <= 2


# --- password policy -------------------------------------------------------------------------------

@pytest.mark.parametrize(("password", "message"), [
    ("Ab1!", "at least 10 characters"),
    (" " * 12, "only spaces"),
    ("xXmarjorie-2024Xx", "must not contain the username"),
    ("password123", "too easy to guess"),
    ("qwertyuiop", "too easy to guess"),
    ("aaaaaaaaaaaa", "too easy to guess"),
])
def test_weak_passwords_are_refused_with_a_reason(password: str, message: str) -> None:
    with pytest.raises(WeakPassword, match=message):
        check_password(password, "Marjorie")


def test_good_passwords_pass() -> None:
    for pw in (GOOD, OTHER_GOOD, "Tr0ub4dor&3-unique-marker", "x" * 5 + "K7#qz!9wPv"):
        check_password(pw, "marjorie")


def test_every_path_that_sets_a_password_applies_the_policy(migrated: str) -> None:
    with session_scope(migrated) as s:
        with pytest.raises(WeakPassword, match="username"):
            create_user(s, "ivan", "ivan-is-the-best-99", Role.ADMIN)
        with pytest.raises(WeakPassword, match="too easy"):
            create_user(s, "ivan", "password123", Role.ADMIN)
        assert s.scalar(select(User).where(User.username == "ivan")) is None
        create_user(s, "ivan", GOOD, Role.ADMIN)
    with session_scope(migrated) as s:
        with pytest.raises(WeakPassword, match="too easy"):
            set_password(s, "ivan", "letmein123")
        with pytest.raises(WeakPassword, match="username"):
            set_password(s, "ivan", "IVAN-velvet-canyon")
    with session_scope(migrated) as s:
        set_password(s, "ivan", OTHER_GOOD, actor="root")
        assert s.scalar(select(AuditLog).where(AuditLog.action == "user.password")).actor == "root"
    limits = SignInLimits()
    assert _try(migrated, "ivan", OTHER_GOOD, limits) is not None
    assert _try(migrated, "ivan", GOOD, limits) is None


def _cli(url: str, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AAS_NEW_PASSWORD"} | {"AAS_NEW_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "aas_core.cli", "--database-url", url, *args],
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_add_and_passwd_apply_the_policy(migrated: str) -> None:
    r = _cli(migrated, "user", "add", "june", "--role", "admin", password="june-summer-1")
    assert r.returncode != 0 and "must not contain the username" in r.stderr and "Traceback" not in r.stderr
    r = _cli(migrated, "user", "add", "june", "--role", "admin", password="password123")
    assert r.returncode != 0 and "too easy to guess" in r.stderr
    assert _cli(migrated, "user", "add", "june", "--role", "admin", password=GOOD).returncode == 0
    r = _cli(migrated, "user", "passwd", "june", password="1234567890")
    assert r.returncode != 0 and "too easy to guess" in r.stderr and "Traceback" not in r.stderr
    r = _cli(migrated, "user", "passwd", "june", password="JUNE-velvet-drums")
    assert r.returncode != 0 and "username" in r.stderr
    r = _cli(migrated, "user", "passwd", "june", password=OTHER_GOOD)
    assert r.returncode == 0, r.stderr
    assert _try(migrated, "june", OTHER_GOOD, SignInLimits()) is not None


# --- sessions end when the account changes ---------------------------------------------------------

def _signed_in(url: str, name: str) -> auth.AuthUser:
    with session_scope(url) as s:
        user = authenticate(s, name, GOOD, limits=SignInLimits())
    assert user is not None and user.fingerprint
    return user


def _check(url: str, user: auth.AuthUser) -> auth.AuthUser | None:
    with session_scope(url) as s:
        return still_valid(s, user)


def test_still_valid_keeps_an_unchanged_account(migrated: str) -> None:
    _user(migrated, "kim")
    user = _signed_in(migrated, "kim")
    again = _check(migrated, user)
    assert again == user and again is not None and again.fingerprint == user.fingerprint
    assert "$argon2" not in repr(user) and user.fingerprint not in repr(user)


@pytest.mark.parametrize("change", ["disabled", "demoted", "password", "erased"])
def test_still_valid_ends_the_session_of_a_changed_account(migrated: str, change: str) -> None:
    _user(migrated, "lee", Role.ADMIN)
    user = _signed_in(migrated, "lee")
    with session_scope(migrated) as s:
        row = s.scalar(select(User).where(User.username == "lee"))
        if change == "disabled":
            row.is_active = False
        elif change == "demoted":
            row.role = Role.INSTRUCTOR
        elif change == "password":
            set_password(s, "lee", OTHER_GOOD)
        else:
            s.delete(row)
    assert _check(migrated, user) is None


def test_still_valid_refuses_a_user_without_fingerprint(migrated: str) -> None:
    _user(migrated, "max", Role.ADMIN)
    user = _signed_in(migrated, "max")
    forged = auth.AuthUser(user.id, user.username, Role.ADMIN)
    assert _check(migrated, forged) is None


def test_still_valid_refreshes_the_instructor_and_student_links(migrated: str) -> None:
    _user(migrated, "ned", Role.INSTRUCTOR)
    user = _signed_in(migrated, "ned")
    assert user.instructor_id is not None
    with session_scope(migrated) as s:
        s.scalar(select(Instructor).where(Instructor.id == user.instructor_id)).user_id = None
        st = repo.add_student(s, "S77", "Ned Student", consent=True)
        s.flush()
        st.user_id = user.id
    fresh = _check(migrated, user)
    assert fresh is not None and fresh.instructor_id is None and fresh.student_number == "S77"
    with session_scope(migrated) as s:
        assert to_auth_user(s, s.get(User, user.id)) == fresh
