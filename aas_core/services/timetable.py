"""Course timetables for the CLI, the Courses page and the scheduler.

The course's instructor (or an administrator) reads and writes it (``require_course``); every
write is validated (``domain.timetable.Timetable``: time zone, term, no overlapping meetings;
here: every room exists) and audited. Imports parse CSV or iCalendar files with the pure
readers of ``domain.timetable`` and replace the timetable as a whole.

The scheduler's reads (:func:`meetings_between`) take no user: it is the system itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from aas_core.db import repo, session_scope
from aas_core.db.models import ClassSession, Course, MissedMeeting, Room
from aas_core.domain.timetable import (
    Meeting,
    Timetable,
    TimetableError,
    TimetableImport,
    occurrences,
    parse_timetable_csv,
    parse_timetable_ics,
    timetable_messages,
)
from aas_core.services.auth import AuthUser, require_course, visible_courses

__all__ = ["MeetingState", "MissedView", "TimetableError", "get_timetable", "import_timetable", "meeting_states",
           "meetings_between", "missed_meetings", "next_meetings", "set_timetable", "show"]

#: Files an import reads, by extension.
CSV_EXT = (".csv", ".txt")
ICS_EXT = (".ics", ".ical", ".ifb", ".icalendar")


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC)


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


@dataclass(frozen=True)
class MissedView:
    course: str
    start: datetime  # aware UTC
    end: datetime | None
    room: str | None
    reason: str

    def as_json(self) -> dict[str, Any]:
        iso = (lambda t: t.isoformat().replace("+00:00", "Z") if t else None)  # noqa: E731
        return {"course": self.course, "start": iso(self.start), "end": iso(self.end), "room": self.room,
                "reason": self.reason}


def _course(s: Any, user: AuthUser, code: str) -> Course:
    course = repo.get_course(s, code)
    require_course(user, course)
    return course


def get_timetable(url: str, user: AuthUser, code: str) -> tuple[Timetable | None, int]:
    """The course's timetable (None: it has none) and the course version an edit must quote."""
    with session_scope(url) as s:
        course = _course(s, user, code)
        return course.timetable, course.version


def _check_rooms(s: Any, tt: Timetable) -> None:
    known = set(s.scalars(select(Room.name)))
    unknown = sorted(tt.rooms() - known)
    if unknown:
        raise TimetableError(f"unknown room(s): {', '.join(unknown)}; an administrator adds them on Rooms or with "
                             f"`aas room add NAME`")


def set_timetable(url: str, user: AuthUser, code: str, timetable: Timetable | dict[str, Any] | None, *,
                  expected_version: int | None = None) -> int:
    """Replace the course's timetable (None removes it); returns the new course version.

    ``TimetableError`` names every bad field or unknown room; ``repo.StaleEdit`` when the course
    changed since ``expected_version`` (another tab); nothing is written then.
    """
    if timetable is not None and not isinstance(timetable, Timetable):
        try:
            timetable = Timetable.model_validate(timetable)
        except ValidationError as exc:
            raise TimetableError(timetable_messages(exc)) from None
    with session_scope(url) as s:
        course = _course(s, user, code)
        if expected_version is not None and course.version != expected_version:
            raise repo.StaleEdit(f"course {course.code} was changed by someone else since this page loaded it "
                                 "(another tab?); the timetable was not saved. Reload to see the current values.")
        if timetable is not None:
            _check_rooms(s, timetable)
        if course.timetable != timetable:
            course.timetable = timetable
            repo.audit(s, user.username, "timetable.set", "course", course.code,
                       timetable=timetable.model_dump(mode="json") if timetable else None)
            s.flush()
        return course.version


def import_timetable(url: str, user: AuthUser, code: str, filename: str, data: bytes, *, timezone: str | None = None,
                     term_start: date | None = None, term_end: date | None = None,
                     expected_version: int | None = None) -> TimetableImport:
    """Read a ``.csv`` or ``.ics`` file and make it the course's timetable (all or nothing).

    What the file does not say (CSV: time zone, term) comes from the options, then from the
    current timetable. ``TimetableError`` says what is wrong, by line for CSV.
    """
    ext = PurePath(filename).suffix.casefold()
    current, _ = get_timetable(url, user, code)  # the access check, before anything is parsed
    if ext in CSV_EXT:
        parsed = parse_timetable_csv(
            data, timezone=timezone or (current.timezone if current else None),
            term_start=term_start or (current.term_start if current else None),
            term_end=term_end or (current.term_end if current else None))
    elif ext in ICS_EXT:
        parsed = parse_timetable_ics(data, timezone=timezone, term_start=term_start, term_end=term_end)
    else:
        raise TimetableError(f"{PurePath(filename).name}: give a .csv or an .ics file")
    set_timetable(url, user, code, parsed.timetable, expected_version=expected_version)
    return parsed


def next_meetings(url: str, user: AuthUser, code: str, n: int = 5, *, now: datetime | None = None) -> list[Meeting]:
    """The course's next ``n`` meetings from ``now`` (one that has started and not ended included)."""
    tt, _ = get_timetable(url, user, code)
    if tt is None or n <= 0:
        return []
    now = _now(now)
    out: list[Meeting] = []
    lo = now - timedelta(days=1)
    # Week by week until n are found or the term (and its extra meetings) is over.
    last = datetime.combine(max([tt.term_end, *(x.date for x in tt.extra)]) + timedelta(days=2),
                            datetime.min.time(), tzinfo=UTC)
    while len(out) < n and lo < last:
        hi = lo + timedelta(days=28)
        out += [m for m in occurrences(tt, lo, hi, course=code) if m.end > now]
        lo = hi
    return out[:n]


def missed_meetings(url: str, user: AuthUser, code: str) -> list[MissedView]:
    """Meetings the scheduler slept through (no session was invented for them), newest first."""
    with session_scope(url) as s:
        course = _course(s, user, code)
        rows = s.scalars(select(MissedMeeting).where(MissedMeeting.course_id == course.id)
                         .order_by(MissedMeeting.meeting_start.desc()))
        return [MissedView(course.code, _aware(r.meeting_start), _aware(r.meeting_end) if r.meeting_end else None,
                           r.room, r.reason) for r in rows]


def meetings_between(url: str, start_utc: datetime, end_utc: datetime,
                     courses: Sequence[str] | None = None) -> list[Meeting]:
    """Every course's meetings starting in ``[start_utc, end_utc)`` (the scheduler; no user)."""
    with session_scope(url) as s:
        q = select(Course.code, Course.timetable).where(Course.timetable.is_not(None))
        rows = [(c, tt) for c, tt in s.execute(q) if courses is None or c in courses]
    out = [m for code, tt in rows if tt is not None for m in occurrences(tt, start_utc, end_utc, course=code)]
    return sorted(out, key=lambda m: (m.start, m.course))


@dataclass(frozen=True)
class MeetingState:
    """A meeting and what became of it: ``upcoming``, ``running``/``completed``/``aborted``
    (its session's state, with the session id), or ``missed`` (with the reason)."""

    meeting: Meeting
    state: str
    session_id: int | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {**self.meeting.as_json(), "state": self.state, "session_id": self.session_id, "reason": self.reason}


def meeting_states(url: str, user: AuthUser, start_utc: datetime, end_utc: datetime, *,
                   now: datetime | None = None, code: str | None = None) -> list[MeetingState]:
    """The meetings of the courses ``user`` may see (or of ``code``) in the window, each with
    its state (for ``aas timetable show`` and an operations view of today's meetings)."""
    now = _now(now)
    with session_scope(url) as s:
        courses = [_course(s, user, code)] if code else list(visible_courses(s, user))
        ids = {c.id: c.code for c in courses}
        tts = {c.code: c.timetable for c in courses if c.timetable is not None}
        lo, hi = _naive(start_utc), _naive(end_utc)
        sessions = {(ids[x.course_id], x.meeting_start): (x.id, x.status.value) for x in s.scalars(
            select(ClassSession).where(ClassSession.course_id.in_(ids), ClassSession.meeting_start >= lo,
                                       ClassSession.meeting_start < hi))}
        missed = {(ids[x.course_id], x.meeting_start): x.reason for x in s.scalars(
            select(MissedMeeting).where(MissedMeeting.course_id.in_(ids), MissedMeeting.meeting_start >= lo,
                                        MissedMeeting.meeting_start < hi))}
    out = []
    for c, tt in sorted(tts.items()):
        for m in occurrences(tt, start_utc, end_utc, course=c):
            key = (c, _naive(m.start))
            if key in sessions:
                sid, state = sessions[key]
                out.append(MeetingState(m, state, sid))
            elif key in missed:
                out.append(MeetingState(m, "missed", reason=missed[key]))
            else:
                out.append(MeetingState(m, "upcoming" if m.start > now else "due"))
    return sorted(out, key=lambda x: (x.meeting.start, x.meeting.course))


def show(url: str, user: AuthUser, code: str, *, n: int = 5, now: datetime | None = None) -> dict[str, Any]:
    """What ``aas timetable show --json`` prints: the timetable, the next meetings, the missed ones."""
    tt, version = get_timetable(url, user, code)
    return {"course": code, "version": version, "timetable": tt.model_dump(mode="json") if tt else None,
            "next": [m.as_json() for m in next_meetings(url, user, code, n, now=now)],
            "missed": [m.as_json() for m in missed_meetings(url, user, code)]}
