"""Account management: the first administrator, and what administrators do with accounts.

Shared by the **Accounts** page and ``aas user ...``. Every function takes ``(url, actor, ...)``,
opens its own transaction, checks that ``actor`` is an administrator (``AccessDenied``
otherwise) and audits the change under the actor's name; passwords never reach the audit log.

Rules that hold on both databases, also when two administrators act at once:

* the first administrator is created once: ``create_first_admin`` inserts the account with
  primary key 1 after checking that there is no account, so of two browsers racing through the
  first-run page one commits and the other hits the primary key (``AlreadySetUp``);
* the last active administrator cannot be disabled or demoted (``LastAdmin``): the active
  administrators' rows are read ``FOR UPDATE``, so two administrators disabling each other
  cannot both succeed;
* disabling an account, resetting its password or changing its role ends its sessions in
  every browser (``auth.revoke_sessions``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from aas_core.db import repo
from aas_core.db.models import Instructor, Role, Student, User
from aas_core.services import in_transaction
from aas_core.services.auth import (
    NO_PASSWORD,
    AccessDenied,
    AuthUser,
    SessionPolicy,
    Ticket,
    WeakPassword,
    _argon2,
    _hasher,
    check_password,
    create_user,
    hash_password,
    normalise_email,
    restamp_session,
    revoke_sessions,
    set_password,
    start_session,
    to_auth_user,
)

#: The first administrator's primary key: doubles as the lock of the first-run page (see module doc).
FIRST_ADMIN_ID = 1
#: Letters and digits that cannot be mistaken for each other when read out (no 0/o, 1/l/i).
_TEMP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class LastAdmin(ValueError):
    """The change would leave no active administrator."""


class AlreadySetUp(ValueError):
    """The first administrator exists already (another browser was quicker)."""


@dataclass(frozen=True)
class Account:
    """One row of the Accounts page (no password hash, no provider subject)."""

    username: str
    role: Role
    active: bool
    email: str | None
    must_change_password: bool
    password_sign_in: bool
    sso_linked: bool
    student_number: str | None
    instructor_name: str | None
    last_sign_in_at: datetime | None
    created_at: datetime


def temporary_password() -> str:
    """Four groups of four unambiguous characters (~78 bits): random, so never weak, and easy
    to pass on; the user must replace it at the first sign-in."""
    return "-".join("".join(secrets.choice(_TEMP_ALPHABET) for _ in range(4)) for _ in range(4))


def _account(s: Session, u: User) -> Account:
    st = s.scalar(select(Student.student_number).where(Student.user_id == u.id))
    inst = s.scalar(select(Instructor.name).where(Instructor.user_id == u.id))
    return Account(u.username, Role(u.role), bool(u.is_active), u.email, bool(u.must_change_password),
                   u.password_hash != NO_PASSWORD, u.oidc_subject is not None, st, inst, u.last_sign_in_at,
                   u.created_at)


def _get(s: Session, username: str) -> User:
    u = s.scalar(select(User).where(User.username == username.strip()))
    if u is None:
        raise repo.NotFound(f"no account {username!r}")
    return u


def _write(url: str, unit):  # type: ignore[no-untyped-def]
    """``unit`` in its own transaction, run again after a deadlock or lost connection (MariaDB picks
    one of two administrators changing accounts at once as the deadlock victim)."""
    from aas_core.db.retry import retry_db

    return retry_db(lambda: in_transaction(url, unit), attempts=3, delay=0.2)


def _admin(actor: AuthUser) -> None:
    if not actor.is_admin:
        raise AccessDenied(f"{actor.username} ({actor.role.value}) may not manage accounts")


def _keep_an_admin(s: Session, target: User, what: str) -> None:
    """Refuse when ``target`` is the last active administrator. Locks the administrators' rows.

    MariaDB: ``SELECT ... FOR UPDATE`` makes a second administrator's check wait for this
    transaction and then read what it committed. SQLite ignores ``FOR UPDATE`` and starts a
    transaction only at the first write, so a no-op write on the target row comes first: it
    takes SQLite's single write lock, and the count below sees every change committed before it
    (without it two admins disabling each other both succeeded, see test_accounts.py).
    """
    s.execute(update(User).where(User.id == target.id).values(is_active=User.is_active)
              .execution_options(synchronize_session=False))
    admins = s.scalars(select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True))
                       .with_for_update()).all()
    if target.id in admins and len(admins) <= 1:
        raise LastAdmin(f"{target.username} is the last active administrator and cannot be {what}; "
                        "make another account an administrator first")


# --- first run ------------------------------------------------------------------------------------

def first_run_needed(url: str) -> bool:
    """True while there is no account at all (the dashboard then offers to create the administrator)."""
    def q(s: Session) -> bool:
        return s.scalar(select(User.id).limit(1)) is None

    return in_transaction(url, q)


def create_first_admin(url: str, username: str, password: str, *, email: str | None = None,
                       client: str | None = None, policy: SessionPolicy | None = None) -> Ticket:
    """Create the first administrator and sign them in; ``AlreadySetUp`` when any account exists.

    One transaction: the check and the insert with the fixed primary key ``FIRST_ADMIN_ID``.
    Two racing requests both see an empty table, but only one insert of that key can commit.
    """
    check_password(password, username)

    def unit(s: Session) -> Ticket:
        if s.scalar(select(User.id).limit(1)) is not None:
            raise AlreadySetUp("AAS is already set up: sign in with your account")
        user = create_user(s, username, password, Role.ADMIN, email=email, actor="first-run", user_id=FIRST_ADMIN_ID)
        s.flush()
        repo.audit(s, "first-run", "user.first_admin", "user", user.username)
        return start_session(s, to_auth_user(s, user), method="password", client=client, policy=policy)

    try:
        return in_transaction(url, unit)
    except (IntegrityError, OperationalError) as exc:
        # The other request's insert of id 1 won (MariaDB: duplicate key; SQLite: the write lock
        # or the primary key). An OperationalError that is not that kind of race is re-raised.
        if isinstance(exc, OperationalError) and "locked" not in str(exc.orig).lower() \
                and "deadlock" not in str(exc.orig).lower():
            raise
        raise AlreadySetUp("AAS is already set up: sign in with your account") from None


# --- administrators' actions ------------------------------------------------------------------------

def list_accounts(url: str, actor: AuthUser) -> list[Account]:
    _admin(actor)

    def q(s: Session) -> list[Account]:
        return [_account(s, u) for u in s.scalars(select(User).order_by(User.username))]

    return in_transaction(url, q)


def create_account(url: str, actor: AuthUser, username: str, role: Role | str, *, sso_only: bool = False,
                   email: str | None = None, name: str | None = None,
                   student_number: str | None = None) -> tuple[Account, str | None]:
    """A new account and, unless ``sso_only``, its temporary password (shown once; the user
    chooses their own at the first sign-in). Students are linked to their student record."""
    _admin(actor)
    role = Role(role)
    temp = None if sso_only else temporary_password()

    def unit(s: Session) -> Account:
        u = create_user(s, username, temp, role, name=name, email=email, student_number=student_number or None,
                        actor=actor.username, must_change_password=True)
        s.flush()
        return _account(s, u)

    return _write(url, unit), temp


def reset_password(url: str, actor: AuthUser, username: str, password: str | None = None) -> str:
    """A temporary password (``password`` or a generated one) that must be replaced at the next
    sign-in; every session of the account ends. Returns the temporary password."""
    _admin(actor)
    temp = password or temporary_password()
    _write(url, lambda s: set_password(s, username, temp, actor=actor.username, must_change=True))
    return temp


def set_active(url: str, actor: AuthUser, username: str, active: bool) -> Account:
    """Enable or disable an account. Disabling ends its sessions; never the last active admin,
    and not one's own account (that would lock one out mid-action)."""
    _admin(actor)

    def unit(s: Session) -> Account:
        u = _get(s, username)
        if not active:
            if u.id == actor.id:
                raise ValueError("you cannot disable your own account")
            if u.role == Role.ADMIN:
                _keep_an_admin(s, u, "disabled")
            revoke_sessions(s, u.id, "account disabled")
        if bool(u.is_active) != active:
            u.is_active = active
            repo.audit(s, actor.username, "user.enable" if active else "user.disable", "user", u.username)
        return _account(s, u)

    return _write(url, unit)


def change_role(url: str, actor: AuthUser, username: str, role: Role | str, *,
                student_number: str | None = None) -> Account:
    """Give an account another role; its sessions end (it signs in again with the new rights).

    To *student* it needs the student record it belongs to (``student_number``); away from
    student the record is unlinked. To *instructor* it gets an instructor entry when it has none
    (one it had before keeps its courses). Never the last active administrator.
    """
    _admin(actor)
    role = Role(role)

    def unit(s: Session) -> Account:
        u = _get(s, username)
        old = Role(u.role)
        if old == role:
            if role == Role.STUDENT and student_number:
                _link(s, u, student_number)
            return _account(s, u)
        if old == Role.ADMIN:
            _keep_an_admin(s, u, "demoted")
        if role == Role.STUDENT:
            if not student_number:
                raise ValueError("a student account needs the student id it belongs to")
            _link(s, u, student_number)
        elif old == Role.STUDENT:
            _unlink(s, u)
        if role == Role.INSTRUCTOR and s.scalar(select(Instructor).where(Instructor.user_id == u.id)) is None:
            repo.add_instructor(s, u.username, u.email, user_id=u.id)
        u.role = role
        revoke_sessions(s, u.id, "role changed")
        repo.audit(s, actor.username, "user.role", "user", u.username, old=old.value, new=role.value)
        return _account(s, u)

    return _write(url, unit)


def _unlink(s: Session, u: User) -> None:
    for st in s.scalars(select(Student).where(Student.user_id == u.id)):
        st.user_id = None


def _link(s: Session, u: User, student_number: str) -> None:
    st = repo.get_student(s, student_number.strip())
    if st.user_id is not None and st.user_id != u.id:
        raise repo.AlreadyExists(f"student {st.student_number} already has another account")
    _unlink(s, u)
    s.flush()
    st.user_id = u.id


def link_student(url: str, actor: AuthUser, username: str, student_number: str | None) -> Account:
    """Link a student account to its student record (``None`` unlinks): what the student sees
    as "my photos, my attendance" follows this link."""
    _admin(actor)

    def unit(s: Session) -> Account:
        u = _get(s, username)
        if Role(u.role) != Role.STUDENT:
            raise ValueError(f"{u.username} is not a student account; change its role first")
        if student_number:
            _link(s, u, student_number)
        else:
            _unlink(s, u)
        repo.audit(s, actor.username, "user.link_student", "user", u.username,
                   student=student_number.strip() if student_number else None)
        return _account(s, u)

    return _write(url, unit)


def set_email(url: str, actor: AuthUser, username: str, email: str | None) -> Account:
    """The e-mail that links the account's first single sign-on. Changing it also removes an
    existing provider link (the next SSO sign-in links again, by the new address)."""
    _admin(actor)
    email = normalise_email(email)

    def unit(s: Session) -> Account:
        u = _get(s, username)
        if email is not None and s.scalar(select(User.id).where(User.email == email, User.id != u.id)):
            raise repo.AlreadyExists(f"another account already has the e-mail {email}")
        if u.email != email:
            if u.password_hash == NO_PASSWORD and email is None:
                raise ValueError("an account without a password needs its e-mail for single sign-on")
            u.email = email
            u.oidc_issuer = u.oidc_subject = None
            revoke_sessions(s, u.id, "e-mail changed")
            repo.audit(s, actor.username, "user.email", "user", u.username)
        return _account(s, u)

    return _write(url, unit)


# --- the user's own password ------------------------------------------------------------------------

def change_own_password(url: str, user: AuthUser, current: str, new: str) -> None:
    """The signed-in user replaces their password (also the forced change after a reset).

    Needs the current (or temporary) password; the new one passes the policy and differs from
    it. Every other session of the account ends; this one goes on.
    """
    if new == current:
        raise WeakPassword("the new password must differ from the current one")
    check_password(new, user.username)

    def unit(s: Session) -> None:
        u = s.get(User, user.id)
        if u is None or not u.is_active:
            raise AccessDenied("this account no longer exists or is disabled")
        try:
            ok = u.password_hash != NO_PASSWORD and _argon2(_hasher.verify, u.password_hash, current)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            raise AccessDenied("the current password is wrong")
        u.password_hash = hash_password(new, u.username)
        u.must_change_password = False
        revoke_sessions(s, u.id, "password changed", keep=user.session_id)
        if user.session_id is not None:
            s.flush()
            restamp_session(s, user.session_id)
        repo.audit(s, u.username, "user.password", "user", u.username, own=True)

    in_transaction(url, unit)


def linkable_students(url: str, actor: AuthUser) -> list[tuple[str, str]]:
    """(student id, name) of the student records without an account, for the "link" pickers."""
    _admin(actor)
    return in_transaction(url, lambda s: [(sn, name) for sn, name in s.execute(
        select(Student.student_number, Student.name).where(Student.user_id.is_(None))
        .order_by(Student.student_number))])


def count_admins(url: str) -> int:
    """Active administrators (for the page's hint)."""
    return in_transaction(url, lambda s: s.scalar(
        select(func.count()).select_from(User).where(User.role == Role.ADMIN, User.is_active.is_(True))) or 0)


__all__ = ["Account", "AlreadySetUp", "LastAdmin", "change_own_password", "change_role", "count_admins",
           "create_account", "create_first_admin", "first_run_needed", "link_student", "linkable_students", "list_accounts",
           "reset_password", "set_active", "set_email", "temporary_password"]
