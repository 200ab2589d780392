"""Accounts and roles: argon2 password hashes, authentication, and the access rules.

Roles: ``admin`` (users, global settings, everything), ``instructor`` (own courses, their
students, sessions and reports), ``student`` (own photos, own consent, own attendance).
Service functions call ``require_*`` helpers so the rules hold for the CLI and the UI alike.

Sign-in is guarded three ways: failed attempts are rate limited per username and per client
(``SignInLimits``), at most ``HASH_CONCURRENCY`` argon2 computations run at once (each one
allocates 64 MiB), and every new password passes ``check_password``.

Signed-in browsers are **server-side sessions** (``UserSession`` rows, see "server-side
sessions" below): the browser's HttpOnly cookie holds a random token, the database only its
SHA-256; every page run re-reads the session and its account (``session_user``), so signing
out, disabling, a password reset or a role change ends the session in every tab, and idle and
absolute expiry apply. Single sign-on (OpenID Connect through ``st.login``) maps the provider's
identity to an existing account with ``sso_account``; it never creates one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import replace as dataclasses_replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import zxcvbn
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aas_core.db import repo
from aas_core.db.models import Course, Instructor, Role, Student, User, UserSession, utcnow

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
    #: The ``UserSession`` row this sign-in is (None for CLI identities and hand-made test users).
    session_id: int | None = field(default=None, compare=False)
    #: An administrator reset the password: nothing but "choose a new password" until it is done.
    must_change_password: bool = False

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


def set_password(s: Session, username: str, password: str, *, actor: str = "system",
                 must_change: bool = False) -> None:
    """Give an account a new password (policy checked, audited) and end its sessions (every tab
    signs in again). ``must_change``: a temporary password the user must replace at sign-in."""
    user = s.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise repo.NotFound(f"no user {username!r}")
    user.password_hash = hash_password(password, user.username)
    user.must_change_password = must_change
    revoke_sessions(s, user.id, "password changed")
    repo.audit(s, actor, "user.password", "user", user.username, **({"temporary": True} if must_change else {}))


#: ``password_hash`` of an account that signs in only through single sign-on: not an argon2
#: hash, so ``authenticate`` refuses every password for it (as for a wrong one).
NO_PASSWORD = "!sso-only"


def normalise_email(email: str | None) -> str | None:
    """Lower-cased and trimmed, None when empty; refuses what is not an address.

    Lower case on both databases: MariaDB compares case-insensitively, SQLite does not, and an
    e-mail links a first single sign-on, so "Ada@Uni.edu" and "ada@uni.edu" must be one address.
    """
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email):
        raise ValueError(f"{email!r} is not an e-mail address")
    return email


def create_user(s: Session, username: str, password: str | None, role: Role | str, *, name: str | None = None,
                email: str | None = None, student_number: str | None = None, actor: str = "system",
                must_change_password: bool = False, user_id: int | None = None) -> User:
    """Create an account; instructors get an Instructor row, students are linked to theirs.

    ``password=None`` makes an account that signs in only through single sign-on (it needs the
    e-mail its provider reports). ``user_id`` fixes the primary key (the first administrator,
    see ``services.accounts.create_first_admin``).
    """
    role = Role(role)
    username = username.strip()
    if not username:
        raise ValueError("username must not be empty")
    email = normalise_email(email)
    if password is None and email is None:
        raise ValueError("an account without a password signs in by single sign-on and needs its e-mail address")
    if s.scalar(select(User).where(User.username == username)):
        raise repo.AlreadyExists(f"user {username!r} already exists")
    if email is not None and s.scalar(select(User).where(User.email == email)):
        raise repo.AlreadyExists(f"another account already has the e-mail {email}")
    pw_hash = NO_PASSWORD if password is None else hash_password(password, username)
    user = User(username=username, password_hash=pw_hash, role=role, email=email,
                must_change_password=must_change_password and password is not None,
                **({"id": user_id} if user_id is not None else {}))
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
                    fingerprint=_fingerprint(user.id, user.username, user.password_hash, user.role, user.is_active),
                    must_change_password=bool(user.must_change_password))


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
               Student.student_number, User.must_change_password)
        .outerjoin(Instructor, Instructor.user_id == User.id)
        .outerjoin(Student, Student.user_id == User.id)
        .where(User.id == auth_user.id)
    ).first()
    if row is None:
        return None
    uid, username, password_hash, role, is_active, instructor_id, student_number, must_change = row
    current = _fingerprint(uid, username, password_hash, role, is_active)
    if not is_active or not hmac.compare_digest(current, auth_user.fingerprint):
        return None
    return AuthUser(uid, username, Role(role), instructor_id, student_number, fingerprint=current,
                    must_change_password=bool(must_change))


# --- server-side sessions ---------------------------------------------------------------------
#
# Why a ticket: sign-in runs over Streamlit's websocket, which cannot set a cookie, let alone an
# HttpOnly one. ``start_session`` therefore creates the row with a one-time ticket (60 s, hash
# only); the page sends the browser to ``/aas/session/start?ticket=...`` (``aas_core.ui.routes``),
# whose HTTP response sets the HttpOnly cookie with a fresh token that only that response ever
# carries (``redeem_ticket``). Tokens and tickets are 256-bit random values: a plain SHA-256 is
# enough to store them (no salt or slow hash needed, nothing to guess), and a stolen database
# gives no usable cookie.

TICKET_TTL = timedelta(seconds=60)
#: ``last_seen_at`` is written at most this often per session (not on every widget click).
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class SessionPolicy:
    """How long a sign-in lasts: ``idle`` without a page run, ``absolute`` in any case."""

    idle: timedelta = timedelta(minutes=60)
    absolute: timedelta = timedelta(hours=12)

    @classmethod
    def from_settings(cls, settings: Any) -> SessionPolicy:
        return cls(idle=timedelta(minutes=settings.session_idle_minutes),
                   absolute=timedelta(hours=settings.session_max_hours))


class SessionEnded(Exception):
    """The session is over; ``str(exc)`` says why in words for the sign-in page."""


SIGNED_OUT = "You signed out (in this or another tab)."
EXPIRED = "Your session expired; please sign in again."
IDLE = "You were signed out after a period of inactivity; please sign in again."
CHANGED = "Your account was changed or disabled; please sign in again."


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def account_stamp(user_id: int, username: str, password_hash: str, role: Role | str, is_active: bool) -> str:
    """Digest of what a session depends on. Unkeyed (sessions outlive the process); it holds
    nothing the users row does not already hold."""
    state = "\x1f".join((str(user_id), username, password_hash, Role(role).value, "1" if is_active else "0"))
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True)
class Ticket:
    """What ``start_session`` gives the page: the user, and the one-time ticket for the browser."""

    user: AuthUser
    ticket: str = field(repr=False)


def start_session(s: Session, user: AuthUser, *, method: str, client: str | None = None,
                  policy: SessionPolicy | None = None) -> Ticket:
    """A new session for ``user`` (just authenticated), redeemable once within ``TICKET_TTL``."""
    policy = policy or SessionPolicy()
    row = s.get(User, user.id)
    if row is None or not row.is_active:
        raise SessionEnded(CHANGED)
    now = utcnow()
    ticket = secrets.token_urlsafe(32)
    sess = UserSession(user_id=row.id, ticket_hash=token_digest(ticket), ticket_expires_at=now + TICKET_TTL,
                       method=method, client=(client or None) and client[:64], created_at=now, last_seen_at=now,
                       expires_at=now + policy.absolute,
                       account_stamp=account_stamp(row.id, row.username, row.password_hash, row.role, row.is_active))
    s.add(sess)
    row.last_sign_in_at = now
    s.flush()
    repo.audit(s, row.username, "user.sign_in", "user", row.username, method=method)
    return Ticket(_session_auth_user(s, row, sess.id), ticket)


def redeem_ticket(s: Session, ticket: str, *, client: str | None = None) -> str | None:
    """The session's cookie token for a valid, unused, unexpired ticket; None otherwise.

    Single use even under a race: the row changes only ``WHERE ticket_hash = ... AND token_hash
    IS NULL``, so of two redemptions one updates the row and the other updates nothing. A ticket
    minted for another client address (when both are known) is refused.
    """
    if not ticket or len(ticket) > 100:
        return None
    h = token_digest(ticket)
    now = utcnow()
    row = s.scalar(select(UserSession).where(UserSession.ticket_hash == h))
    if row is None or row.ticket_expires_at is None or row.ticket_expires_at < now or row.revoked_at is not None:
        return None
    if row.client and client and row.client != client[:64]:
        return None
    token = secrets.token_urlsafe(32)
    done = s.execute(update(UserSession)
                     .where(UserSession.id == row.id, UserSession.ticket_hash == h, UserSession.token_hash.is_(None))
                     .values(token_hash=token_digest(token), ticket_hash=None, ticket_expires_at=None,
                             last_seen_at=now)
                     .execution_options(synchronize_session=False))
    return token if done.rowcount == 1 else None


def _session_auth_user(s: Session, user: User, session_id: int) -> AuthUser:
    return dataclasses_replace(to_auth_user(s, user), session_id=session_id)


def session_user(s: Session, *, token: str | None = None, session_id: int | None = None,
                 policy: SessionPolicy | None = None) -> AuthUser:
    """The signed-in user of a session (by cookie ``token`` or by ``session_id``), or raise
    ``SessionEnded`` saying why not: signed out, expired, idle too long, or the account changed
    (disabled, erased, demoted, new password). An idle or changed session is revoked on the way.

    One indexed read of the session and its account per page run; ``last_seen_at`` is written
    at most every ``TOUCH_EVERY``.
    """
    policy = policy or SessionPolicy()
    if token:
        sess = s.scalar(select(UserSession).where(UserSession.token_hash == token_digest(token)))
    elif session_id is not None:
        sess = s.get(UserSession, session_id)
    else:
        sess = None
    if sess is None:
        raise SessionEnded(EXPIRED)
    if sess.revoked_at is not None:
        raise SessionEnded({"sign-out": SIGNED_OUT, "idle": IDLE, "expired": EXPIRED}.get(
            sess.revoked_reason or "", CHANGED))
    now = utcnow()
    if now >= sess.expires_at:
        _revoke(sess, "expired", now)
        raise SessionEnded(EXPIRED)
    if now - sess.last_seen_at > policy.idle:
        _revoke(sess, "idle", now)
        raise SessionEnded(IDLE)
    user = s.get(User, sess.user_id)
    if user is None or not user.is_active or not hmac.compare_digest(
            account_stamp(user.id, user.username, user.password_hash, user.role, user.is_active), sess.account_stamp):
        _revoke(sess, "account changed", now)
        raise SessionEnded(CHANGED)
    if now - sess.last_seen_at >= min(TOUCH_EVERY, policy.idle / 4):
        sess.last_seen_at = now
    return _session_auth_user(s, user, sess.id)


def _revoke(sess: UserSession, reason: str, now: datetime) -> None:
    if sess.revoked_at is None:
        sess.revoked_at, sess.revoked_reason = now, reason[:40]
        sess.ticket_hash = None


def end_session(s: Session, *, token: str | None = None, session_id: int | None = None,
                reason: str = "sign-out") -> bool:
    """Revoke one session (sign-out). True when there was a live one."""
    if token:
        sess = s.scalar(select(UserSession).where(UserSession.token_hash == token_digest(token)))
    elif session_id is not None:
        sess = s.get(UserSession, session_id)
    else:
        return False
    if sess is None or sess.revoked_at is not None:
        return False
    _revoke(sess, reason, utcnow())
    return True


def revoke_sessions(s: Session, user_id: int, reason: str, *, keep: int | None = None) -> int:
    """End every live session of an account (but ``keep``); how many ended."""
    q = select(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep is not None:
        q = q.where(UserSession.id != keep)
    now = utcnow()
    rows = list(s.scalars(q))
    for r in rows:
        _revoke(r, reason, now)
    return len(rows)


def restamp_session(s: Session, session_id: int) -> None:
    """After the user changed their own password: this session goes on (the stamp follows the
    account), every other one was revoked."""
    sess = s.get(UserSession, session_id)
    if sess is not None and sess.revoked_at is None:
        u = s.get(User, sess.user_id)
        if u is not None:
            sess.account_stamp = account_stamp(u.id, u.username, u.password_hash, u.role, u.is_active)


# --- single sign-on (OpenID Connect) ----------------------------------------------------------

class NoAccount(Exception):
    """The identity provider vouched for someone AAS has no (usable) account for; the message
    says who, and what to do."""


def sso_account(s: Session, claims: Mapping[str, Any], *, link_by_email: bool = True, actor: str = "sso") -> User:
    """The account a verified OpenID Connect identity signs in to. Never creates one.

    1. an account already linked to this issuer + subject;
    2. else, when ``link_by_email``: the one account whose e-mail is the identity's **verified**
       e-mail (``email_verified`` true) and that has no other provider identity yet; the link
       (issuer + subject) is stored and audited, so a later e-mail change at the provider does
       not move the account;
    3. else ``NoAccount``. A disabled account is refused likewise.
    """
    issuer, subject = str(claims.get("iss") or ""), str(claims.get("sub") or "")
    email = str(claims.get("email") or "").strip().lower()
    who = email or subject or "this sign-in"
    if not issuer or not subject:
        raise NoAccount("The identity provider did not say who signed in (no issuer or subject).")
    user = s.scalar(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject))
    if user is None and link_by_email and email and claims.get("email_verified") is True:
        candidate = s.scalar(select(User).where(User.email == email))
        if candidate is not None and candidate.oidc_subject is None:
            user = candidate
            user.oidc_issuer, user.oidc_subject = issuer[:255], subject[:255]
            repo.audit(s, actor, "user.sso_link", "user", user.username, issuer=issuer)
    if user is None:
        raise NoAccount(f"There is no AAS account for {who}. Ask an administrator to create one "
                        "(with this e-mail address) and sign in again.")
    if not user.is_active:
        raise NoAccount(f"The AAS account for {who} is disabled. Ask an administrator.")
    return user


def sso_sign_in(s: Session, claims: Mapping[str, Any], *, client: str | None = None,
                policy: SessionPolicy | None = None, link_by_email: bool = True) -> Ticket:
    """``sso_account`` + ``start_session`` in one transaction (the dashboard's SSO path)."""
    user = sso_account(s, claims, link_by_email=link_by_email)
    s.flush()
    return start_session(s, to_auth_user(s, user), method="sso", client=client, policy=policy)


def password_sign_in(s: Session, username: str, password: str, *, client: str | None = None,
                     policy: SessionPolicy | None = None) -> Ticket | None:
    """``authenticate`` + ``start_session`` in one transaction (the dashboard's sign-in form).

    ``client`` is the browser's IP address, None when unknown (localhost): unknown clients share
    one per-client sign-in budget, and their ticket is not bound to an address."""
    user = authenticate(s, username, password, client=client or "unknown")
    if user is None:
        return None
    return start_session(s, user, method="password", client=client, policy=policy)


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
