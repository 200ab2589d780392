"""Courses for the CLI and the dashboard: list, create, edit details and the typed config, roster.

Every function opens its own transaction and checks the user first (``require_course``), so
the Courses page, ``aas course config`` and the session commands share one policy. The
course settings are one :class:`~aas_core.domain.course_config.CourseConfig`; edits are
optimistic (``expected_version``): a save over someone else's newer change is refused
(``repo.StaleEdit``), never silently merged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import Course, Instructor, Role, utcnow
from aas_core.db.repo import StaleEdit
from aas_core.domain.course_config import ConfigError, CourseConfig, PlanConfig
from aas_core.services.auth import (
    AccessDenied,
    AuthUser,
    may_put_on_roster,
    require_course,
    require_role,
    visible_courses,
)
from aas_core.services.roster import RosterImport, RosterRow, apply_roster

__all__ = ["StaleEdit", "CourseView", "RosterView", "add_students", "archive_course", "calibrated_threshold",
           "course_camera", "create_course", "duration_text", "get_course", "list_courses", "import_roster",
           "instructors", "plan_from_minutes", "readable_config_error", "remove_students", "roster", "update_config",
           "update_details"]


@dataclass(frozen=True)
class CourseView:
    """A course as the pages and the CLI show it (no ORM object escapes a transaction)."""

    id: int
    code: str
    name: str
    schedule: str | None
    room: str | None
    instructor_id: int | None
    instructor: str | None
    students: int
    config: CourseConfig
    version: int
    archived: bool = False

    @classmethod
    def of(cls, c: Course) -> CourseView:
        return cls(c.id, c.code, c.name, c.schedule, c.room, c.instructor_id, c.instructor.name if c.instructor else None,
                   len(c.enrollments), c.config, c.version, c.archived_at is not None)


def _course(s: Any, user: AuthUser, code: str) -> Course:
    course = repo.get_course(s, code)
    require_course(user, course)
    return course


def list_courses(url: str, user: AuthUser, *, active_only: bool = False) -> list[CourseView]:
    """The courses ``user`` may see; ``active_only``: without archived ones (the pickers where
    new work starts: Live Session, Inspector, a new student's course)."""
    with session_scope(url) as s:
        return [CourseView.of(c) for c in visible_courses(s, user) if not (active_only and c.archived_at is not None)]


def get_course(url: str, user: AuthUser, code: str) -> CourseView:
    with session_scope(url) as s:
        return CourseView.of(_course(s, user, code))


def instructors(url: str, user: AuthUser) -> dict[int, str]:
    """Instructor id -> name, for an admin assigning courses (others get an empty dict)."""
    if not user.is_admin:
        return {}
    with session_scope(url) as s:
        return {i.id: i.name for i in s.scalars(select(Instructor).order_by(Instructor.name))}


def create_course(url: str, user: AuthUser, settings: Settings, code: str, name: str, *, schedule: str | None = None,
                  room: str | None = None, instructor_id: int | None = None) -> CourseView:
    """Instructors create courses for themselves; an admin may name any instructor (or none)."""
    require_role(user, Role.INSTRUCTOR)
    if not user.is_admin:
        instructor_id = user.instructor_id
    with session_scope(url) as s:
        course = repo.add_course(s, code, name or code, actor=user.username, instructor_id=instructor_id,
                                 schedule=(schedule or "").strip() or None, room=(room or "").strip() or None,
                                 config=CourseConfig.for_new_course(settings))
        return CourseView.of(course)


def update_details(url: str, user: AuthUser, code: str, *, expected_version: int | None = None,
                   **changes: Any) -> tuple[list[str], int]:
    """Name, schedule, room (and, for an admin, the instructor). Returns (changed fields, new version)."""
    allowed = {"name", "schedule", "room"} | ({"instructor_id"} if user.is_admin else set())
    if set(changes) - allowed:
        raise PermissionError(f"{user.username} may not change {', '.join(sorted(set(changes) - allowed))}")
    with session_scope(url) as s:
        course = _course(s, user, code)
        changed = repo.update_course(s, course, actor=user.username, expected_version=expected_version, **changes)
        return changed, course.version


def update_config(url: str, user: AuthUser, code: str, *, config: CourseConfig | None = None,
                  assignments: Iterable[str] = (), expected_version: int | None = None,
                  ) -> tuple[CourseConfig, list[str], int]:
    """Replace the config and/or apply ``KEY=VALUE`` assignments; validated before anything is written.

    Returns (the stored config, changed sections, new version). ``ConfigError`` names the bad
    field; ``repo.StaleEdit`` when the course changed since ``expected_version``.
    """
    with session_scope(url) as s:
        course = _course(s, user, code)
        new = (config or course.config).with_settings(assignments)
        changed = repo.update_course(s, course, actor=user.username, expected_version=expected_version, config=new)
        return course.config, changed, course.version


def archive_course(url: str, user: AuthUser, code: str, *, archived: bool = True) -> bool:
    """Archive (or bring back) a course: its sessions, records and roster are kept; it only leaves
    the pickers where new work starts. Its instructor or an admin; audited. False if unchanged."""
    with session_scope(url) as s:
        course = _course(s, user, code)
        if (course.archived_at is not None) == archived:
            return False
        course.archived_at = utcnow() if archived else None
        repo.audit(s, user.username, "course.archive" if archived else "course.unarchive", "course", course.code)
        return True


def course_camera(settings: Settings, config: CourseConfig, code: str, *, url: str):  # -> capture.CameraConfig
    """The course's named camera with its secrets (``services.rooms.camera_config``: a camera
    of the database merged with the environment's secrets, or one of the environment), or a
    clear error."""
    from aas_core.services.rooms import camera_config

    if not config.camera:
        raise LookupError(f"course {code} has no camera; choose one on Courses → Camera or run "
                          f"`aas course config {code} --set camera=NAME`")
    return camera_config(settings, url, config.camera)


# --- roster -------------------------------------------------------------------------------------

@dataclass
class RosterView:
    rows: list[dict[str, Any]]
    others: list[tuple[str, str]] = field(default_factory=list)  # students not on it: (id, name)


def roster(url: str, user: AuthUser, code: str) -> RosterView:
    """The roster, and the existing students ``user`` may add to it: an admin every other
    student; an instructor only students already on another of their own courses (an instructor
    never sees students outside their courses)."""
    with session_scope(url) as s:
        course = _course(s, user, code)
        counts = repo.sample_counts(s, course)
        rows = [{"student_id": x.student_number, "name": x.name, "email": x.email or "", "consent": x.has_consent,
                 "samples": counts.get(x.student_number, 0)} for x in repo.roster(s, course)]
        on = {r["student_id"] for r in rows}
        candidates = repo.list_students(s) if user.is_admin else {
            e.student.student_number: e.student for c in visible_courses(s, user) for e in c.enrollments}.values()
        others = sorted((x.student_number, x.name) for x in candidates
                        if x.student_number not in on and may_put_on_roster(user, x, course))
        return RosterView(rows, others)


def add_students(url: str, user: AuthUser, code: str, student_numbers: Sequence[str]) -> int:
    """Put existing students on the roster (all or none); ``AccessDenied`` for a student ``user``
    may not add (``auth.may_put_on_roster``), without saying who the student is."""
    with session_scope(url) as s:
        course = _course(s, user, code)
        added = 0
        for sn in student_numbers:
            st = repo.find_student(s, sn)
            if st is None or not may_put_on_roster(user, st, course):
                raise AccessDenied(f"{sn} cannot be added by {user.username}: only an administrator can put a "
                                   "student of another course on this roster")
            added += repo.enroll_in_course(s, course, st, actor=user.username)
        return added


def remove_students(url: str, user: AuthUser, code: str, student_numbers: Sequence[str]) -> int:
    with session_scope(url) as s:
        course = _course(s, user, code)
        return sum(repo.remove_from_roster(s, course, repo.get_student(s, sn), user.username) for sn in student_numbers)


def import_roster(url: str, user: AuthUser, code: str, rows: list[RosterRow]) -> RosterImport:
    with session_scope(url) as s:
        return apply_roster(s, _course(s, user, code), rows, user=user)


# --- plain words for plans and settings ---------------------------------------------------------

def duration_text(seconds: float) -> str:
    """``10`` -> "10 s", ``300`` -> "5 min", ``90`` -> "1 min 30 s", ``4260`` -> "1 h 11 min"
    (what people read, instead of "0.166667 min" or "4260 s")."""
    total = int(round(float(seconds)))
    if total < 60:
        return f"{total} s"
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    parts = ([f"{h} h"] if h else []) + ([f"{m} min"] if m else []) + ([f"{sec} s"] if sec and not h else [])
    return " ".join(parts)


#: Names a person reads for the settings of a course (messages name the field they are about).
FIELD_LABELS = {
    "plan.snapshots": "Snapshots", "plan.first_after_s": "First snapshot after",
    "plan.second_after_s": "Next snapshot after", "plan.session_length_s": "Session length",
    "plan.margin_s": "Margin of the last snapshot", "plan.burst_frames": "Frames per snapshot",
    "plan.burst_interval_s": "Time between frames", "rules.tolerate_gaps": "Tolerated missed snapshots",
    "rules.middle_only": "Seen only in between", "rules.interrupted": "Left and came back",
    "rules.min_present_fraction": "Minimum share of snapshots", "rules.min_confidence": "Minimum similarity",
    "recognition.threshold": "Recognition threshold", "camera": "Camera",
    "config.plan": "capture plan", "config.rules": "status rules", "config.recognition": "recognition threshold",
    "config.camera": "camera", "name": "name", "schedule": "schedule", "room": "room", "instructor_id": "instructor",
}


def readable_config_error(message: object) -> str:
    """A ``ConfigError`` message with the field names a person reads (``plan.first_after_s`` ->
    "First snapshot after")."""
    text = str(message)
    for key in sorted(FIELD_LABELS, key=len, reverse=True):
        text = text.replace(key, FIELD_LABELS[key])
    return text


def changed_text(changed: Iterable[str]) -> str:
    """``["config.plan", "config.rules"]`` -> "capture plan, status rules"."""
    return ", ".join(FIELD_LABELS.get(c, c.replace("_", " ")) for c in changed)


def plan_from_minutes(snapshots: int, first_min: float, next_min: float, length_min: float, *,
                      keep: PlanConfig) -> PlanConfig:
    """The capture plan as typed on the Courses page (minutes), checked with messages in minutes.

    ``keep`` supplies what the page does not edit (margin, burst). ``ConfigError`` says what does
    not fit in the units the person typed ("… = 71 min"), never in seconds.
    """
    margin = keep.margin_s
    first, nxt, length = first_min * 60, next_min * 60, length_min * 60
    if first >= length:
        raise ConfigError(f"the first snapshot ({duration_text(first)} after the start) must come before the end "
                          f"of the session ({duration_text(length)})")
    if snapshots >= 3 and nxt <= 0:
        raise ConfigError("with more than two snapshots the next one must come more than 0 min after the first")
    if snapshots >= 2 and first + nxt + margin > length - margin:
        raise ConfigError(
            f"no room for the last snapshot: it must come after first + next + margin = "
            f"{duration_text(first + nxt + margin)} and before session length − margin = "
            f"{duration_text(length - margin)} (margin {duration_text(margin)}); shorten the first or next "
            f"snapshot time or lengthen the session")
    try:
        return PlanConfig(snapshots=int(snapshots), first_after_s=first, second_after_s=nxt,
                          session_length_s=length, margin_s=margin, burst_frames=keep.burst_frames,
                          burst_interval_s=keep.burst_interval_s)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError: the burst does not fit
        raise ConfigError(readable_config_error(exc)) from None


def calibrated_threshold(pipeline_config: object) -> float:
    """The recognition threshold a course without its own uses: the installation's setting, else
    the embedder's calibrated one (what ``Pipeline.threshold`` gives, without loading a model)."""
    from pathlib import Path

    thr = getattr(pipeline_config, "threshold", None)
    if thr is not None:
        return float(thr)
    if getattr(pipeline_config, "embedder", "") == "dlib-resnet":
        from aas_core.vision.embed.dlib_resnet import DEFAULT_THRESHOLD

        return float(DEFAULT_THRESHOLD)
    from aas_core.vision.embed.arcface_onnx import CALIBRATED_THRESHOLDS, UNCALIBRATED_THRESHOLD

    stem = Path(getattr(pipeline_config, "embed_model", None) or "").stem
    return float(CALIBRATED_THRESHOLDS.get(stem, UNCALIBRATED_THRESHOLD))
