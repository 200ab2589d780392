"""Accounts and roles: argon2 password hashes, authentication, and the access rules.

Roles: ``admin`` (users, global settings, everything), ``instructor`` (own courses, their
students, sessions and reports), ``student`` (own photos, own consent, own attendance).
Service functions call ``require_*`` helpers so the rules hold for the CLI and the UI alike.

Sign-in is guarded three ways: failed attempts are rate limited per username and per client
(``SignInLimits``), at most ``HASH_CONCURRENCY`` argon2 computations run at once (each one
allocates 64 MiB), and every new password passes ``check_password``. A signed-in session
carries a fingerprint of its account row; ``still_valid`` re-reads the row on every page run
so a disabled, erased, demoted or re-passworded account stops working in open tabs.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import zxcvbn
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.orm import Session

from aas_core.db import repo
from aas_core.db.models import Course, Instructor, Role, Student, User

T = TypeVar("T")

_hasher = PasswordHasher()
MIN_PASSWORD_LEN = 10
#: zxcvbn score (0..4) a new password needs: 2 = "somewhat guessable", ~10^8 guesses and up.
MIN_PASSWORD_SCORE = 2
#: zxcvbn refuses longer input (and slows down on it); the first 72 characters decide the score.
_ZXCVBN_MAX = 72

#: argon2 computations allowed at once. Each allocates 64 MiB and a CPU for ~50 ms; a burst of
#: unauthenticated sign-in requests must not multiply that without bound.
HASH_CONCURRENCY = 2
#: How long a sign-in waits for a free hashing slot before answering "busy" (never forever).
HASH_WAIT_S = 10.0
_hash_slots = threading.BoundedSemaphore(HASH_CONCURRENCY)

#: Random per process: the session fingerprint cannot be recomputed from a leaked hash alone, and
#: sessions do not outlive the process anyway (Streamlit keeps session state in memory).
_FINGERPRINT_KEY = secrets.token_bytes(32)


class AccessDenied(PermissionError):
    """The signed-in user may not do or see this."""


class WeakPassword(ValueError):
    """A new password does not meet the policy (the message says which rule)."""


class SignInThrottled(Exception):
    """Too many failed sign-ins for this username or from this client; try again later.

    Raised for unknown usernames too, so it tells nobody whether an account exists.
    """

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = max(1.0, retry_after_s)
        minutes = math.ceil(self.retry_after_s / 60)
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}" if self.retry_after_s > 60 else \
            f"{math.ceil(self.retry_after_s)} seconds"
        super().__init__(f"Too many failed sign-ins. Please wait {wait} and try again.")


class ServerBusy(Exception):
    """Every password-hashing slot stayed busy for ``HASH_WAIT_S``: answer, do not queue forever."""

    def __init__(self) -> None:
        super().__init__("The server is busy; please try again in a moment.")


@dataclass(frozen=True)
class AuthUser:
    """Who is signed in (kept in Streamlit session state; no secrets in it)."""

    id: int
    username: str
    role: Role
    instructor_id: int | None = None
    student_number: str | None = None
    #: Keyed digest of the account row's password hash, role and active flag at sign-in (not the
    #: hash itself); ``still_valid`` compares it with the row on every page run. Hand-made users
    #: (CLI, tests) have none and are never accepted by ``still_valid``.
    fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


# --- passwords ----------------------------------------------------------------------------------

def check_password(password: str, username: str | None = None) -> None:
    """Raise ``WeakPassword`` saying what is wrong with a new password; return if it is fine."""
    if len(password) < MIN_PASSWORD_LEN:
        raise WeakPassword(f"password must have at least {MIN_PASSWORD_LEN} characters")
    if not password.strip():
        raise WeakPassword("password must not be only spaces")
    name = (username or "").strip().casefold()
    if name and name in password.casefold():
        raise WeakPassword("password must not contain the username")
    result = zxcvbn.zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[name] if name else [])
    if result["score"] < MIN_PASSWORD_SCORE:
        feedback = result.get("feedback") or {}
        hints = [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]
        hint = " ".join(h.strip() for h in hints if h and h.strip())
        raise WeakPassword("password is too easy to guess: " + (hint or "use a passphrase of several unrelated words"))


def _argon2(fn: Callable[..., T], *args: str) -> T:
    """Run one argon2 operation in one of the ``HASH_CONCURRENCY`` slots, or raise ``ServerBusy``."""
    if not _hash_slots.acquire(timeout=HASH_WAIT_S):
        raise ServerBusy()
    try:
        return fn(*args)
    finally:
        _hash_slots.release()


def hash_password(password: str, username: str | None = None) -> str:
    """The argon2id hash of a *new* password; refuses one that fails ``check_password``."""
    check_password(password, username)
    return _argon2(_hasher.hash, password)


def set_password(s: Session, username: str, password: str, *, actor: str = "system") -> None:
    """Give an account a new password (policy checked, audited). Open tabs of it are signed out
    by ``still_valid`` because the hash, and so the fingerprint, changes."""
    user = s.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise repo.NotFound(f"no user {username!r}")
    user.password_hash = hash_password(password, user.username)
    repo.audit(s, actor, "user.password", "user", user.username)


def create_user(s: Session, username: str, password: str, role: Role | str, *, name: str | None = None,
                email: str | None = None, student_number: str | None = None, actor: str = "system") -> User:
    """Create an account; instructors get an Instructor row, students are linked to theirs."""
    role = Role(role)
    username = username.strip()
    if not username:
        raise ValueError("username must not be empty")
    if s.scalar(select(User).where(User.username == username)):
        raise repo.AlreadyExists(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password, username), role=role)
    s.add(user)
    s.flush()
    if role == Role.INSTRUCTOR:
        repo.add_instructor(s, name or username, email, user_id=user.id)
    elif role == Role.STUDENT:
        if not student_number:
            raise ValueError("a student account needs the student id it belongs to")
        st = repo.get_student(s, student_number)
        if st.user_id is not None:
            raise repo.AlreadyExists(f"student {student_number} already has an account")
        st.user_id = user.id
    repo.audit(s, actor, "user.create", "user", username, role=role.value)
    return user


# --- sign-in limits -------------------------------------------------------------------------------

@dataclass
class SignInLimits:
    """Failed sign-ins allowed per username and per client in a moving window (in memory).

    Only failures count, and only while they are inside the window, so nobody can lock someone
    else out for longer than they keep failing; a successful sign-in clears its username's count
    (not its client's: one valid account must not reset an attacker's budget for guessing others).
    """

    per_username: str = "5 per 15 minutes"
    per_client: str = "20 per 15 minutes"
    _limiter: MovingWindowRateLimiter = field(init=False, repr=False)
    _user_item: RateLimitItem = field(init=False, repr=False)
    _client_item: RateLimitItem = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._user_item = parse(self.per_username)
        self._client_item = parse(self.per_client)

    def _keys(self, username: str, client: str | None) -> list[tuple[RateLimitItem, str, str]]:
        # Case-folded: MariaDB compares usernames case-insensitively, so "Alice" is "alice".
        keys = [(self._user_item, "user", username.strip().casefold())]
        if client is not None:
            keys.append((self._client_item, "client", client))
        return keys

    def check(self, username: str, client: str | None) -> None:
        """Raise ``SignInThrottled`` when this username or client has used up its failures."""
        waits = [self._limiter.get_window_stats(item, kind, key).reset_time - time.time()
                 for item, kind, key in self._keys(username, client) if not self._limiter.test(item, kind, key)]
        if waits:
            raise SignInThrottled(max(waits))

    def failed(self, username: str, client: str | None) -> None:
        for item, kind, key in self._keys(username, client):
            self._limiter.hit(item, kind, key)

    def succeeded(self, username: str) -> None:
        item, kind, key = self._keys(username, None)[0]
        self._limiter.clear(item, kind, key)

    def reset(self) -> None:
        """Forget every count (tests; an administrator restarting the server does the same)."""
        self._storage.reset()


#: The process-wide limits the dashboard uses (Streamlit serves every session from one process).
SIGN_IN_LIMITS = SignInLimits()


def authenticate(s: Session, username: str, password: str, *, client: str | None = None,
                 limits: SignInLimits | None = None) -> AuthUser | None:
    """The user if the password is right, else None (same answer for unknown users: no probing).

    ``client`` (the dashboard passes the browser's IP address) adds a per-client limit to the
    per-username one. Raises ``SignInThrottled`` before any database read or hash when either is
    used up, and ``ServerBusy`` when no hashing slot frees up in time (neither counts as a failure).
    """
    limits = SIGN_IN_LIMITS if limits is None else limits
    limits.check(username, client)
    user = s.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.is_active:
        _argon2(_hasher.hash, "timing-equaliser")  # roughly the same time as a real check
        limits.failed(username, client)
        return None
    try:
        _argon2(_hasher.verify, user.password_hash, password)
    except (VerificationError, InvalidHashError):
        limits.failed(username, client)
        return None
    limits.succeeded(username)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _argon2(_hasher.hash, password)
    return to_auth_user(s, user)


def _fingerprint(user_id: int, username: str, password_hash: str, role: Role | str, is_active: bool) -> str:
    state = "\x1f".join((str(user_id), username, password_hash, Role(role).value, "1" if is_active else "0"))
    return hmac.new(_FINGERPRINT_KEY, state.encode(), hashlib.sha256).hexdigest()[:32]


def to_auth_user(s: Session, user: User) -> AuthUser:
    inst = s.scalar(select(Instructor).where(Instructor.user_id == user.id))
    st = s.scalar(select(Student).where(Student.user_id == user.id))
    return AuthUser(user.id, user.username, user.role, inst.id if inst else None, st.student_number if st else None,
                    fingerprint=_fingerprint(user.id, user.username, user.password_hash, user.role, user.is_active))


def still_valid(s: Session, auth_user: AuthUser) -> AuthUser | None:
    """``auth_user`` refreshed from its account row, or None when the session must end.

    None when the row is gone (erased), disabled, or its password or role changed since sign-in
    (the fingerprint differs), and for users without a fingerprint. One indexed read (the users
    row by primary key, its instructor and student rows joined on their unique ``user_id``); a
    student or instructor link added or removed since sign-in is picked up.
    """
    if auth_user.fingerprint is None:
        return None
    row = s.execute(
        select(User.id, User.username, User.password_hash, User.role, User.is_active, Instructor.id,
               Student.student_number)
        .outerjoin(Instructor, Instructor.user_id == User.id)
        .outerjoin(Student, Student.user_id == User.id)
        .where(User.id == auth_user.id)
    ).first()
    if row is None:
        return None
    uid, username, password_hash, role, is_active, instructor_id, student_number = row
    current = _fingerprint(uid, username, password_hash, role, is_active)
    if not is_active or not hmac.compare_digest(current, auth_user.fingerprint):
        return None
    return AuthUser(uid, username, Role(role), instructor_id, student_number, fingerprint=current)


# --- access rules ---------------------------------------------------------------------------

def require_role(user: AuthUser, *roles: Role) -> None:
    if user.role not in roles and not user.is_admin:
        raise AccessDenied(f"{user.username} ({user.role.value}) may not do this")


def can_manage_course(user: AuthUser, course: Course) -> bool:
    return user.is_admin or (user.role == Role.INSTRUCTOR and user.instructor_id is not None
                             and course.instructor_id == user.instructor_id)


def may_put_on_roster(user: AuthUser, student: Student, course: Course) -> bool:
    """Who may put an *existing* student on ``course``'s roster: an admin, or the instructor of
    ``course`` when the student is already on another course of theirs.

    Roster membership grants access to a student's photos, e-mail and consent, so letting any
    instructor add anyone would let them take over any student (see ``require_student_access``).
    """
    if user.is_admin:
        return True
    return can_manage_course(user, course) and any(can_manage_course(user, e.course) for e in student.enrollments)


def require_course(user: AuthUser, course: Course) -> None:
    if not can_manage_course(user, course):
        raise AccessDenied(f"{user.username} may not see course {course.code}")


def visible_courses(s: Session, user: AuthUser) -> list[Course]:
    if user.is_admin:
        return list(repo.list_courses(s))
    if user.role == Role.INSTRUCTOR:
        return list(repo.list_courses(s, instructor_id=user.instructor_id if user.instructor_id is not None else -1))
    return []


def require_student_access(user: AuthUser, student: Student) -> None:
    """Students see only themselves; instructors see students on their courses."""
    if user.is_admin:
        return
    if user.role == Role.STUDENT:
        if student.student_number != user.student_number:
            raise AccessDenied("students can only see their own data")
        return
    if user.role != Role.INSTRUCTOR or user.instructor_id is None or not any(
            e.course.instructor_id == user.instructor_id for e in student.enrollments):
        raise AccessDenied(f"{student.student_number} is not on any of {user.username}'s courses")
