"""A course's timetable: weekly meetings in a term, cancelled dates, one-off extra meetings.

Pure: no database, no clock. ``occurrences(timetable, start_utc, end_utc)`` expands the
timetable into concrete :class:`Meeting` s with aware UTC start and end times, computed from
the *local* wall-clock times in the timetable's IANA time zone (``zoneinfo``), so a lecture
at 09:00 stays at 09:00 local time on both sides of a daylight-saving change (its UTC time
moves by an hour). Two edge cases of local time, both resolved the way ``zoneinfo`` does
with ``fold=0``: a time inside the spring-forward gap (02:30 on the night clocks jump from
02:00 to 03:00) is read with the offset before the change (it lands at 03:30); a time that
happens twice in the autumn is the first of the two.

Also here, because they only turn bytes into a :class:`Timetable`: ``parse_timetable_csv``
and ``parse_timetable_ics``. The iCalendar file is read with ``icalendar`` and expanded with
``recurring-ical-events`` (RRULE, RDATE, EXDATE, time zones), then folded losslessly into
weekly meetings + cancelled dates + extra meetings (``fold_meetings``): the folded timetable
yields exactly the calendar's meetings.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["WEEKDAYS", "ExtraMeeting", "Meeting", "Timetable", "TimetableError", "TimetableImport", "WeeklyMeeting",
           "fold_meetings", "occurrences", "parse_timetable_csv", "parse_timetable_ics", "parse_weekday",
           "timetable_messages"]

_FORBID = ConfigDict(extra="forbid", frozen=True)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAY_NAMES = {name: k for k, day in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday",
                                                   "saturday", "sunday"))
                  for name in (day, day[:3], day[:2])}
#: A term longer than this is a typo (and would make every expansion needlessly long).
MAX_TERM_DAYS = 2 * 366
#: What one iCalendar import may expand to (a calendar repeating hourly forever must not hang it).
MAX_ICS_MEETINGS = 2000


class TimetableError(ValueError):
    """A timetable (or a file meant to be one) that cannot be used; the message says why and where."""


def parse_weekday(value: Any) -> int:
    """0 (Monday) .. 6 (Sunday) from a number or a name (``Mon``, ``monday``, ``MO``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 6:
            return value
        raise ValueError(f"weekday {value} is not 0 (Monday) .. 6 (Sunday)")
    text = str(value).strip().casefold()
    if text.isdigit():
        return parse_weekday(int(text))
    if text in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES[text]
    raise ValueError(f"{value!r} is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def _check_times(start: time, end: time) -> None:
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("meeting times are local wall-clock times: give them without a time zone")
    if end <= start:
        raise ValueError(f"a meeting must end after it starts ({start:%H:%M}-{end:%H:%M}); meetings across "
                         "midnight are not supported")


class WeeklyMeeting(BaseModel):
    """A meeting every week of the term on ``weekday`` (0 = Monday), local times."""

    model_config = _FORBID

    weekday: int = Field(ge=0, le=6, description="0 = Monday .. 6 = Sunday.")
    start: time
    end: time
    room: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("weekday", mode="before")
    @classmethod
    def _weekday(cls, v: Any) -> int:
        return parse_weekday(v)

    @model_validator(mode="after")
    def _times(self) -> WeeklyMeeting:
        _check_times(self.start, self.end)
        return self

    def describe(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {self.start:%H:%M}-{self.end:%H:%M}" + (f" in {self.room}" if self.room else "")


class ExtraMeeting(BaseModel):
    """A one-off meeting on ``date`` (local times), e.g. a make-up lecture."""

    model_config = _FORBID

    date: date
    start: time
    end: time
    room: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _times(self) -> ExtraMeeting:
        _check_times(self.start, self.end)
        return self

    def describe(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.start:%H:%M}-{self.end:%H:%M}" + (f" in {self.room}" if self.room else "")


def _overlap(a: tuple[time, time], b: tuple[time, time]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class Timetable(BaseModel):
    """Weekly meetings from ``term_start`` to ``term_end`` (local dates, both included) in
    ``timezone``, minus ``cancelled`` dates (every weekly meeting of that date), plus ``extra``
    meetings (never cancelled by ``cancelled``: a date cancelled and an extra meeting on it is
    how a meeting moves).

    Meetings of one course may not overlap: every meeting start is one session of the course
    (the scheduler keys sessions by course and meeting start).
    """

    model_config = _FORBID

    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Berlin.")
    term_start: date
    term_end: date
    weekly: list[WeeklyMeeting] = Field(default_factory=list, max_length=50)
    cancelled: list[date] = Field(default_factory=list, max_length=400)
    extra: list[ExtraMeeting] = Field(default_factory=list, max_length=MAX_ICS_MEETINGS)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)") from None
        return v

    @field_validator("cancelled")
    @classmethod
    def _sorted_dates(cls, v: list[date]) -> list[date]:
        return sorted(set(v))

    @field_validator("extra")
    @classmethod
    def _sorted_extras(cls, v: list[ExtraMeeting]) -> list[ExtraMeeting]:
        return sorted(v, key=lambda m: (m.date, m.start))

    @model_validator(mode="after")
    def _consistent(self) -> Timetable:
        if self.term_end < self.term_start:
            raise ValueError(f"the term ends ({self.term_end}) before it starts ({self.term_start})")
        if (self.term_end - self.term_start).days > MAX_TERM_DAYS:
            raise ValueError(f"a term of {(self.term_end - self.term_start).days} days is longer than two years")
        for a, b in itertools.combinations(self.weekly, 2):
            if a.weekday == b.weekday and _overlap((a.start, a.end), (b.start, b.end)):
                raise ValueError(f"weekly meetings {a.describe()} and {b.describe()} overlap")
        for a, b in itertools.pairwise(self.extra):
            if a.date == b.date and _overlap((a.start, a.end), (b.start, b.end)):
                raise ValueError(f"extra meetings {a.describe()} and {b.describe()} overlap")
        cancelled = set(self.cancelled)
        for x in self.extra:
            if self.term_start <= x.date <= self.term_end and x.date not in cancelled:
                for w in self.weekly:
                    if w.weekday == x.date.weekday() and _overlap((w.start, w.end), (x.start, x.end)):
                        raise ValueError(f"extra meeting {x.describe()} overlaps the weekly meeting {w.describe()}; "
                                         f"cancel {x.date} if it replaces it")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def rooms(self) -> set[str]:
        return {m.room for m in [*self.weekly, *self.extra] if m.room}


@dataclass(frozen=True)
class Meeting:
    """One concrete meeting: aware UTC times; ``key`` is stable (course + UTC start)."""

    course: str
    start: datetime
    end: datetime
    room: str | None
    timezone: str
    extra: bool = False

    @property
    def key(self) -> str:
        return f"{self.course}@{self.start.astimezone(UTC):%Y-%m-%dT%H:%MZ}"

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(ZoneInfo(self.timezone))

    @property
    def local_end(self) -> datetime:
        return self.end.astimezone(ZoneInfo(self.timezone))

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "course": self.course, "start": _iso(self.start), "end": _iso(self.end),
                "local_start": self.local_start.isoformat(), "local_end": self.local_end.isoformat(),
                "room": self.room, "extra": self.extra}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(d: date, t: time, zone: ZoneInfo) -> datetime:
    # fold=0: the gap and the repeated hour of a DST change resolve as documented above.
    return datetime.combine(d, t, tzinfo=zone).astimezone(UTC)


def _aware(t: datetime, what: str) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime (UTC)")
    return t.astimezone(UTC)


def occurrences(timetable: Timetable, start_utc: datetime, end_utc: datetime, *,
                course: str = "") -> list[Meeting]:
    """Every meeting of ``timetable`` that starts in ``[start_utc, end_utc)``, in time order.

    ``course`` names the course on each meeting (the timetable itself does not store it).
    """
    start_utc, end_utc = _aware(start_utc, "start_utc"), _aware(end_utc, "end_utc")
    if end_utc <= start_utc:
        return []
    zone = timetable.zone
    # Local dates that can hold a meeting starting in the window (a day's margin: offsets < 24 h).
    first = max(timetable.term_start, (start_utc.astimezone(zone) - timedelta(days=1)).date())
    last = min(timetable.term_end, (end_utc.astimezone(zone) + timedelta(days=1)).date())
    cancelled = set(timetable.cancelled)
    out: list[Meeting] = []
    by_weekday: dict[int, list[WeeklyMeeting]] = defaultdict(list)
    for w in timetable.weekly:
        by_weekday[w.weekday].append(w)
    d = first
    while d <= last:
        if d not in cancelled:
            for w in by_weekday.get(d.weekday(), ()):
                out.append(Meeting(course, _utc(d, w.start, zone), _utc(d, w.end, zone), w.room, timetable.timezone))
        d += timedelta(days=1)
    for x in timetable.extra:
        out.append(Meeting(course, _utc(x.date, x.start, zone), _utc(x.date, x.end, zone), x.room, timetable.timezone,
                           extra=True))
    return sorted((m for m in out if start_utc <= m.start < end_utc), key=lambda m: (m.start, m.course))


def timetable_messages(exc: ValidationError) -> str:
    """One line per problem, named by field (for the page, the CLI and import errors)."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def make_timetable(**data: Any) -> Timetable:
    """``Timetable(**data)`` with a ``TimetableError`` naming the fields on failure."""
    try:
        return Timetable(**data)
    except ValidationError as exc:
        raise TimetableError(timetable_messages(exc)) from None


@dataclass
class TimetableImport:
    """A parsed file: the timetable and what the reader should know (nothing was refused)."""

    timetable: Timetable
    notes: list[str] = field(default_factory=list)
    meetings: int = 0  # concrete meetings the file describes over the term


# --- CSV ---------------------------------------------------------------------------------------

CSV_HELP = ("columns what,day,start,end,room; rows: timezone,Europe/Berlin · term_start,2026-02-16 · "
            "term_end,2026-06-12 · weekly,Mon,09:00,10:30,B-204 · cancel,2026-04-06 · extra,2026-05-02,10:00,11:30,A-101")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _time(text: str) -> time:
    try:
        t = time.fromisoformat(text if len(text) != 4 else f"0{text}")  # 9:00 -> 09:00
    except ValueError:
        raise ValueError(f"{text!r} is not a time (HH:MM)") from None
    if t.tzinfo is not None:
        raise ValueError(f"{text!r}: give local times without a time zone")
    return t


def parse_timetable_csv(data: bytes | str, *, timezone: str | None = None, term_start: date | None = None,
                        term_end: date | None = None) -> TimetableImport:
    """Read a timetable CSV (see ``CSV_HELP``); comma or semicolon separated, header required.

    ``timezone``/``term_start``/``term_end`` fill what the file does not say (a row in the
    file wins). Every bad row is reported (by line), nothing is half-read.
    """
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    if not text.strip():
        raise TimetableError(f"the file is empty; expected {CSV_HELP}")
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().casefold() for h in next(reader, [])]
    if header[:2] != ["what", "day"]:
        raise TimetableError(f"line 1: the header must start with what,day; expected {CSV_HELP}")
    col = {name: k for k, name in enumerate(header)}
    errors: list[str] = []
    values: dict[str, Any] = {}
    weekly: list[WeeklyMeeting] = []
    cancelled: list[date] = []
    extra: list[ExtraMeeting] = []

    def cell(row: list[str], name: str) -> str:
        k = col.get(name)
        return row[k].strip() if k is not None and k < len(row) else ""

    for line, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        what, day = cell(row, "what").casefold(), cell(row, "day")
        try:
            if what == "timezone":
                values["timezone"] = day
            elif what in ("term_start", "term_end"):
                values[what] = _date(day)
            elif what == "weekly":
                weekly.append(WeeklyMeeting(weekday=parse_weekday(day), start=_time(cell(row, "start")),
                                            end=_time(cell(row, "end")), room=cell(row, "room") or None))
            elif what == "cancel":
                cancelled.append(_date(day))
            elif what == "extra":
                extra.append(ExtraMeeting(date=_date(day), start=_time(cell(row, "start")),
                                          end=_time(cell(row, "end")), room=cell(row, "room") or None))
            else:
                raise ValueError(f"unknown row kind {what!r} (timezone, term_start, term_end, weekly, cancel, extra)")
        except ValidationError as exc:
            errors.append(f"line {line}: {timetable_messages(exc)}")
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
    if errors:
        raise TimetableError("; ".join(errors))
    values.setdefault("timezone", timezone)
    values.setdefault("term_start", term_start)
    values.setdefault("term_end", term_end)
    missing = [k for k in ("timezone", "term_start", "term_end") if values[k] is None]
    if missing:
        raise TimetableError(f"the timetable needs {', '.join(missing)}: add rows like "
                             f"'timezone,Europe/Berlin' / 'term_start,2026-02-16' or pass them as options")
    tt = make_timetable(weekly=weekly, cancelled=cancelled, extra=extra, **values)
    return TimetableImport(tt, meetings=len(_all_meetings(tt)))


def _all_meetings(tt: Timetable) -> list[Meeting]:
    zone = tt.zone
    lo = datetime.combine(tt.term_start - timedelta(days=1), time(), tzinfo=zone)
    hi = datetime.combine(max([tt.term_end, *(x.date for x in tt.extra)]) + timedelta(days=2), time(), tzinfo=zone)
    return occurrences(tt, lo, hi)


# --- folding concrete meetings into a timetable -------------------------------------------------

@dataclass(frozen=True, order=True)
class LocalMeeting:
    """A concrete meeting in local wall-clock time (what a calendar lists)."""

    date: date
    start: time
    end: time
    room: str | None = None


def fold_meetings(timezone: str, meetings: Iterable[LocalMeeting], *, term_start: date | None = None,
                  term_end: date | None = None) -> Timetable:
    """The timetable that yields exactly ``meetings``: weekly meetings for the series that repeat
    (same weekday, times and room on two dates or more), the dates a series skips as
    cancelled, and every other meeting (and the meetings on a cancelled date) as extra ones.

    Lossless by construction: weekly ∖ cancelled ∪ extra = the given meetings.
    """
    actual = sorted(set(meetings))
    if not actual:
        raise TimetableError("no meeting to build a timetable from")
    term_start = term_start or actual[0].date
    term_end = term_end or actual[-1].date
    series: dict[tuple[int, time, time, str | None], list[date]] = defaultdict(list)
    for m in actual:
        if term_start <= m.date <= term_end:
            series[(m.date.weekday(), m.start, m.end, m.room)].append(m.date)
    weekly: list[WeeklyMeeting] = []
    # Most regular series first; one that would overlap a kept series on its weekday stays as extra dates.
    for (wd, start, end, room), dates in sorted(series.items(), key=lambda kv: (-len(kv[1]), kv[0][:3])):
        if len(dates) < 2 or any(w.weekday == wd and _overlap((w.start, w.end), (start, end)) for w in weekly):
            continue
        weekly.append(WeeklyMeeting(weekday=wd, start=start, end=end, room=room))
    weekly.sort(key=lambda w: (w.weekday, w.start))
    generated: set[LocalMeeting] = set()
    d = term_start
    while d <= term_end:
        generated.update(LocalMeeting(d, w.start, w.end, w.room) for w in weekly if w.weekday == d.weekday())
        d += timedelta(days=1)
    have = set(actual)
    cancelled = {m.date for m in generated - have}
    extra = [ExtraMeeting(date=m.date, start=m.start, end=m.end, room=m.room) for m in actual
             if m not in generated or m.date in cancelled]
    return make_timetable(timezone=timezone, term_start=term_start, term_end=term_end, weekly=weekly,
                          cancelled=sorted(cancelled), extra=extra)


# --- iCalendar ------------------------------------------------------------------------------------

def _zone_name(value: Any) -> str | None:
    tz = getattr(value, "tzinfo", None)
    if tz is None:
        return None
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if key:
        return str(key)
    return "UTC" if value.utcoffset() == timedelta(0) else None


def parse_timetable_ics(data: bytes, *, timezone: str | None = None, term_start: date | None = None,
                        term_end: date | None = None) -> TimetableImport:
    """Read an iCalendar file: every VEVENT, recurrences expanded by ``recurring-ical-events``
    (EXDATE, RDATE, RRULE with its own time zone), then folded into a timetable.

    The time zone: ``timezone``, else the calendar's ``X-WR-TIMEZONE``, else the first event's
    ``DTSTART`` zone. The term: ``term_start``/``term_end``, else the first and last meeting. A
    rule without an end is expanded up to ``term_end`` (or one year; a note says so). All-day
    events are skipped with a note (they have no time to take snapshots at).
    """
    import icalendar
    import recurring_ical_events

    try:
        cal = icalendar.Calendar.from_ical(data)
    except Exception as exc:  # noqa: BLE001 - any parser error means "not a calendar"; say which
        raise TimetableError(f"not an iCalendar file: {exc}") from None
    events = list(cal.walk("VEVENT"))
    if not events:
        raise TimetableError("the calendar has no event (VEVENT)")
    notes: list[str] = []
    starts = [e.decoded("DTSTART") for e in events if e.get("DTSTART") is not None]
    timed = [s for s in starts if isinstance(s, datetime)]
    if timezone is None:
        wr = cal.get("X-WR-TIMEZONE")
        timezone = str(wr) if wr else next((z for z in map(_zone_name, timed) if z), None)
        if timezone is None:
            timezone = "UTC"
            notes.append("the calendar names no time zone: its times were read as UTC (pass --timezone)")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimetableError(f"{timezone!r} is not an IANA time zone") from None
    if not timed:
        raise TimetableError("the calendar has only all-day events; a timetable needs start and end times")
    first = min(s if s.tzinfo else s.replace(tzinfo=zone) for s in timed).astimezone(zone).date()
    lo = term_start or first
    unbounded = [str(e.get("SUMMARY", "?")) for e in events
                 if e.get("RRULE") is not None and not ({"UNTIL", "COUNT"} & set(e["RRULE"]))]
    hi = term_end or (first + timedelta(days=365))
    if unbounded and term_end is None:
        notes.append(f"{', '.join(sorted(set(unbounded))[:3])} repeat(s) without an end: meetings were taken up to "
                     f"{hi} (pass --term-end)")
    query = recurring_ical_events.of(cal)
    local: list[LocalMeeting] = []
    skipped_all_day: set[str] = set()
    # between() wants the window in the calendar's terms: local midnights of the first and the day after the last.
    window = (datetime.combine(lo, time(), tzinfo=zone), datetime.combine(hi + timedelta(days=1), time(), tzinfo=zone))
    for occ in query.between(*window):
        if len(local) >= MAX_ICS_MEETINGS:
            raise TimetableError(f"the calendar expands to more than {MAX_ICS_MEETINGS} meetings; "
                                 "give a shorter term (--term-start/--term-end)")
        start, end = occ.decoded("DTSTART"), occ.decoded("DTEND") if occ.get("DTEND") is not None else None
        summary = str(occ.get("SUMMARY", "an event"))
        if not isinstance(start, datetime):
            skipped_all_day.add(summary)
            continue
        if end is None:
            dur = occ.decoded("DURATION") if occ.get("DURATION") is not None else None
            if dur is None:
                raise TimetableError(f"{summary} at {start}: the event has no end (DTEND or DURATION)")
            end = start + dur
        start = (start if start.tzinfo else start.replace(tzinfo=zone)).astimezone(zone)
        end = (end if end.tzinfo else end.replace(tzinfo=zone)).astimezone(zone)
        if end.date() != start.date():
            raise TimetableError(f"{summary} on {start:%Y-%m-%d}: meetings across midnight are not supported")
        room = str(occ.get("LOCATION", "")).strip() or None
        local.append(LocalMeeting(start.date(), start.time().replace(tzinfo=None), end.time().replace(tzinfo=None),
                                  room[:100] if room else None))
    if skipped_all_day:
        notes.append(f"all-day events skipped: {', '.join(sorted(skipped_all_day)[:5])}")
    if not local:
        raise TimetableError(f"no timed meeting between {lo} and {hi}")
    tt = fold_meetings(timezone, local, term_start=term_start, term_end=term_end)
    n = len(_all_meetings(tt))
    if n != len(set(local)):  # the fold is lossless by construction; a mismatch is a bug, never silent
        raise TimetableError(f"internal error: the calendar has {len(set(local))} meetings, the timetable {n}")
    return TimetableImport(tt, notes, n)


def describe(tt: Timetable) -> list[str]:
    """Lines a person reads: time zone and term, weekly meetings, cancelled dates, extra meetings."""
    lines = [f"time zone {tt.timezone}, term {tt.term_start} to {tt.term_end}"]
    lines += [f"weekly {w.describe()}" for w in tt.weekly]
    if tt.cancelled:
        lines.append("cancelled " + ", ".join(f"{d}" for d in tt.cancelled))
    lines += [f"extra {x.describe()}" for x in tt.extra]
    return lines


def meetings_json(meetings: Sequence[Meeting]) -> list[dict[str, Any]]:
    return [m.as_json() for m in meetings]


def fit_plan(plan: Any, meeting: Meeting) -> Any:
    """The course's ``PlanConfig`` for one meeting: when the meeting is shorter than the plan's
    session length, the plan shortened to the meeting (its random last snapshot must fall while
    the class is still in the room, or everyone would be "left early"); the plan unchanged when
    it fits, or when the shortened one would not be valid (the first snapshot after the end).
    """
    length = (meeting.end - meeting.start).total_seconds()
    if plan.session_length_s <= length:
        return plan
    try:
        return type(plan)(**{**plan.model_dump(), "session_length_s": length})
    except ValidationError:
        return plan
