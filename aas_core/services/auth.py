"""Accounts and roles: argon2 password hashes, authentication, and the access rules.

Roles: ``admin`` (users, global settings, everything), ``instructor`` (own courses, their
students, sessions and reports), ``student`` (own photos, own consent, own attendance).
Service functions call ``require_*`` helpers so the rules hold for the CLI and the UI alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from aas_core.db import repo
from aas_core.db.models import Course, Instructor, Role, Student, User

_hasher = PasswordHasher()
MIN_PASSWORD_LEN = 8


class AccessDenied(PermissionError):
    """The signed-in user may not do or see this."""


@dataclass(frozen=True)
class AuthUser:
    """Who is signed in (kept in Streamlit session state; no secrets in it)."""

    id: int
    username: str
    role: Role
    instructor_id: int | None = None
    student_number: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LEN} characters")
    return _hasher.hash(password)


def create_user(s: Session, username: str, password: str, role: Role | str, *, name: str | None = None,
                email: str | None = None, student_number: str | None = None, actor: str = "system") -> User:
    """Create an account; instructors get an Instructor row, students are linked to theirs."""
    role = Role(role)
    username = username.strip()
    if not username:
        raise ValueError("username must not be empty")
    if s.scalar(select(User).where(User.username == username)):
        raise repo.AlreadyExists(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role)
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


def authenticate(s: Session, username: str, password: str) -> AuthUser | None:
    """The user if the password is right, else None (same answer for unknown users: no probing)."""
    user = s.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.is_active:
        _hasher.hash("timing-equaliser")  # roughly the same time as a real check
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return to_auth_user(s, user)


def to_auth_user(s: Session, user: User) -> AuthUser:
    inst = s.scalar(select(Instructor).where(Instructor.user_id == user.id))
    st = s.scalar(select(Student).where(Student.user_id == user.id))
    return AuthUser(user.id, user.username, user.role, inst.id if inst else None, st.student_number if st else None)


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
