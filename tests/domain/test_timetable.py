"""The pure timetable: occurrences in UTC right across daylight-saving changes, term, cancelled and
extra meetings, validation messages, the CSV reader and the iCalendar reader (recurrences and
EXDATE expanded by recurring-ical-events, folded losslessly into a timetable)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aas_core.domain.course_config import PlanConfig
from aas_core.domain.timetable import (
    LocalMeeting,
    Meeting,
    Timetable,
    TimetableError,
    fit_plan,
    fold_meetings,
    occurrences,
    parse_timetable_csv,
    parse_timetable_ics,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def tt(**kw) -> Timetable:  # type: ignore[no-untyped-def]
    base = {"timezone": "Europe/Berlin", "term_start": date(2026, 3, 2), "term_end": date(2026, 4, 30),
            "weekly": [{"weekday": "Mon", "start": "09:00", "end": "10:30", "room": "B-204"}]}
    return Timetable(**{**base, **kw})


def test_a_weekly_meeting_keeps_its_local_time_across_the_spring_and_autumn_changes() -> None:
    spring = occurrences(tt(), utc(2026, 3, 20), utc(2026, 4, 3), course="CS1")
    assert [m.start for m in spring] == [utc(2026, 3, 23, 8), utc(2026, 3, 30, 7)]  # CET then CEST (29 March)
    assert {m.local_start.strftime("%H:%M") for m in spring} == {"09:00"}
    assert [m.end - m.start for m in spring] == [timedelta(minutes=90)] * 2
    autumn = occurrences(tt(term_start=date(2026, 10, 1), term_end=date(2026, 11, 30)), utc(2026, 10, 18),
                         utc(2026, 11, 1), course="CS1")
    assert [m.start for m in autumn] == [utc(2026, 10, 19, 7), utc(2026, 10, 26, 8)]  # CEST then CET (25 October)
    # America changes on other dates (8 March 2026): the same rule, another zone
    ny = occurrences(tt(timezone="America/New_York"), utc(2026, 3, 1), utc(2026, 3, 17), course="CS1")
    assert [m.start for m in ny] == [utc(2026, 3, 2, 14), utc(2026, 3, 9, 13), utc(2026, 3, 16, 13)]


def test_times_in_the_gap_and_the_repeated_hour_resolve_as_documented() -> None:
    # Sunday 29 March 2026: 02:00 -> 03:00 in Berlin; 02:30 does not exist and lands at 03:30 local
    gap = tt(weekly=[{"weekday": "Sun", "start": "02:30", "end": "04:00"}])
    [m] = occurrences(gap, utc(2026, 3, 28), utc(2026, 3, 30))
    assert m.start == utc(2026, 3, 29, 1, 30) and m.local_start.strftime("%H:%M") == "03:30"
    # Sunday 25 October 2026: 02:30 happens twice; the first (CEST, 00:30 UTC) is the meeting
    rep = tt(weekly=[{"weekday": "Sun", "start": "02:30", "end": "04:00"}], term_start=date(2026, 10, 1),
             term_end=date(2026, 10, 31))
    [m] = occurrences(rep, utc(2026, 10, 24), utc(2026, 10, 26))
    assert m.start == utc(2026, 10, 25, 0, 30)


def test_term_bounds_cancelled_dates_extra_meetings_window_and_keys() -> None:
    t = tt(weekly=[{"weekday": 0, "start": "09:00", "end": "10:30", "room": "B-204"},
                   {"weekday": "thursday", "start": "14:00", "end": "15:30", "room": "B-204"}],
           cancelled=[date(2026, 3, 9), date(2026, 3, 9)],
           extra=[{"date": "2026-03-14", "start": "10:00", "end": "11:00", "room": "A-101"},
                  {"date": "2026-03-09", "start": "11:00", "end": "12:00"}])
    assert t.cancelled == [date(2026, 3, 9)]
    ms = occurrences(t, utc(2026, 2, 1), utc(2026, 3, 16), course="CS1")
    assert [(m.local_start.strftime("%a %d %H:%M"), m.room, m.extra) for m in ms] == [
        ("Mon 02 09:00", "B-204", False), ("Thu 05 14:00", "B-204", False),
        ("Mon 09 11:00", None, True),  # the cancelled Monday's replacement
        ("Thu 12 14:00", "B-204", False), ("Sat 14 10:00", "A-101", True)]  # 16 March: window end excluded
    assert all(m.course == "CS1" and m.start.tzinfo is not None for m in ms)
    assert ms[0].key == "CS1@2026-03-02T08:00Z"
    assert ms[0].as_json()["start"] == "2026-03-02T08:00:00Z"
    # the window is [start, end): a meeting starting exactly at the end is not in it, at the start it is
    assert [m.key for m in occurrences(t, utc(2026, 3, 2, 8), utc(2026, 3, 2, 8, 1), course="CS1")] == \
        ["CS1@2026-03-02T08:00Z"]
    assert occurrences(t, utc(2026, 3, 2, 7), utc(2026, 3, 2, 8)) == []
    # the term's last day is included, the day after is not
    last = occurrences(t, utc(2026, 4, 27), utc(2026, 5, 15))
    assert [m.local_start.date() for m in last] == [date(2026, 4, 27), date(2026, 4, 30)]
    with pytest.raises(ValueError, match="aware"):
        occurrences(t, datetime(2026, 3, 1), utc(2026, 3, 5))


@pytest.mark.parametrize(("change", "message"), [
    ({"timezone": "Mars/Olympus"}, "not an IANA time zone"),
    ({"term_end": date(2026, 1, 1)}, "the term ends"),
    ({"weekly": [{"weekday": "Mon", "start": "10:00", "end": "09:00"}]}, "must end after it starts"),
    ({"weekly": [{"weekday": "Fun", "start": "09:00", "end": "10:00"}]}, "is not a weekday"),
    ({"weekly": [{"weekday": "Mon", "start": "09:00", "end": "10:30"},
                 {"weekday": "Mon", "start": "10:00", "end": "11:00"}]}, "overlap"),
    ({"extra": [{"date": "2026-03-02", "start": "10:00", "end": "11:00"}]}, "overlaps the weekly meeting"),
    ({"unknown": 1}, "Extra inputs are not permitted"),
])
def test_bad_timetables_are_refused_with_the_reason(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tt(**change)


CSV = """what,day,start,end,room
timezone,Europe/Berlin,,,
term_start,2026-03-02,,,
term_end,2026-04-30,,,
weekly,Mon,09:00,10:30,B-204
weekly,Thu,14:00,15:30,B-204
cancel,2026-04-06,,,
extra,2026-04-11,10:00,11:30,A-101
"""


def test_csv_import_reads_every_row_kind_and_counts_the_meetings() -> None:
    r = parse_timetable_csv(CSV.encode())
    t = r.timetable
    assert (t.timezone, t.term_start, t.term_end) == ("Europe/Berlin", date(2026, 3, 2), date(2026, 4, 30))
    assert [w.describe() for w in t.weekly] == ["Mon 09:00-10:30 in B-204", "Thu 14:00-15:30 in B-204"]
    assert t.cancelled == [date(2026, 4, 6)] and t.extra[0].room == "A-101"
    # 9 Mondays (one cancelled) + 9 Thursdays + 1 extra
    assert r.meetings == 8 + 9 + 1
    # semicolons, a BOM, missing zone and term from the options
    semi = "\ufeffWHAT;DAY;START;END;ROOM\nweekly;tue;9:00;10:00;\n"
    t2 = parse_timetable_csv(semi.encode(), timezone="UTC", term_start=date(2026, 3, 2),
                             term_end=date(2026, 3, 31)).timetable
    assert t2.weekly[0].weekday == 1 and t2.weekly[0].room is None and t2.timezone == "UTC"


def test_csv_import_reports_every_bad_line_and_what_is_missing() -> None:
    bad = CSV + "weekly,Fri,11:00,10:00,B\nextra,2026-13-01,10:00,11:00,\nholiday,2026-04-01,,,\n"
    with pytest.raises(TimetableError) as exc:
        parse_timetable_csv(bad)
    text = str(exc.value)
    assert "line 9:" in text and "must end after it starts" in text
    assert "line 10:" in text and "is not a date" in text
    assert "line 11:" in text and "unknown row kind 'holiday'" in text
    with pytest.raises(TimetableError, match="needs timezone, term_start, term_end"):
        parse_timetable_csv("what,day,start,end,room\nweekly,Mon,09:00,10:00,\n")
    with pytest.raises(TimetableError, match="header must start with what,day"):
        parse_timetable_csv("day,start\nMon,09:00\n")
    with pytest.raises(TimetableError, match="empty"):
        parse_timetable_csv(b"")


VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""


def ics(*events: str) -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\nUID:{k}@test\r\n{e.strip()}\r\nEND:VEVENT\r\n" for k, e in enumerate(events))
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//aas test//EN\r\n" + VTIMEZONE.replace("\n", "\r\n")
            + body + "END:VCALENDAR\r\n").encode()


def test_ics_import_expands_the_rule_respects_exdate_and_keeps_local_times_across_dst() -> None:
    data = ics("""SUMMARY:Lecture
DTSTART;TZID=Europe/Berlin:20260302T090000
DTEND;TZID=Europe/Berlin:20260302T103000
RRULE:FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20260430T220000Z
EXDATE;TZID=Europe/Berlin:20260406T090000,20260409T090000
LOCATION:B-204""", """SUMMARY:Make-up
DTSTART;TZID=Europe/Berlin:20260411T100000
DTEND;TZID=Europe/Berlin:20260411T113000
LOCATION:A-101""", """SUMMARY:Holiday
DTSTART;VALUE=DATE:20260501
DTEND;VALUE=DATE:20260502""")
    r = parse_timetable_ics(data)
    t = r.timetable
    assert t.timezone == "Europe/Berlin" and (t.term_start, t.term_end) == (date(2026, 3, 2), date(2026, 4, 30))
    assert [w.describe() for w in t.weekly] == ["Mon 09:00-10:30 in B-204", "Thu 09:00-10:30 in B-204"]
    assert t.cancelled == [date(2026, 4, 6), date(2026, 4, 9)]
    assert [x.describe() for x in t.extra] == ["2026-04-11 10:00-11:30 in A-101"]
    assert any("all-day events skipped: Holiday" in n for n in r.notes)
    ms = occurrences(t, utc(2026, 3, 1), utc(2026, 5, 1))
    # 9 Mondays + 9 Thursdays, minus the two EXDATEs, plus the make-up
    assert r.meetings == len(ms) == 17
    assert {m.local_start.strftime("%H:%M") for m in ms if not m.extra} == {"09:00"}
    assert utc(2026, 3, 26, 8) in {m.start for m in ms} and utc(2026, 3, 30, 7) in {m.start for m in ms}


def test_ics_import_of_a_fortnightly_rule_is_exact_and_an_endless_rule_is_bounded_with_a_note() -> None:
    data = ics("""SUMMARY:Lab
DTSTART;TZID=Europe/Berlin:20260303T140000
DTEND;TZID=Europe/Berlin:20260303T160000
RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=5
LOCATION:Lab 1""")
    r = parse_timetable_ics(data)
    got = [m.local_start.date() for m in occurrences(r.timetable, utc(2026, 1, 1), utc(2027, 1, 1))]
    assert got == [date(2026, 3, 3) + timedelta(weeks=2 * k) for k in range(5)]
    endless = ics("""SUMMARY:Seminar
DTSTART;TZID=Europe/Berlin:20260302T090000
DTEND;TZID=Europe/Berlin:20260302T100000
RRULE:FREQ=WEEKLY""")
    r2 = parse_timetable_ics(endless, term_end=date(2026, 3, 31))
    assert r2.meetings == 5 and r2.timetable.term_end == date(2026, 3, 31)
    r3 = parse_timetable_ics(endless)
    assert any("without an end" in n and "--term-end" in n for n in r3.notes)
    with pytest.raises(TimetableError, match="not an iCalendar file"):
        parse_timetable_ics(b"hello")
    with pytest.raises(TimetableError, match="no event"):
        parse_timetable_ics(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n")


local_meetings = st.lists(
    st.builds(LocalMeeting,
              date=st.dates(min_value=date(2026, 3, 1), max_value=date(2026, 5, 31)),
              start=st.sampled_from([time(8), time(10), time(14)]),
              end=st.just(time(23)),
              room=st.sampled_from([None, "A", "B"])),
    min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(local_meetings)
def test_folding_any_set_of_meetings_gives_back_exactly_those_meetings(meetings: list[LocalMeeting]) -> None:
    # one meeting per day (a course's meetings never overlap): keep the first of each date
    by_day: dict[date, LocalMeeting] = {}
    for m in meetings:
        by_day.setdefault(m.date, LocalMeeting(m.date, m.start, time(m.start.hour + 1), m.room))
    t = fold_meetings("Europe/Berlin", by_day.values())
    got = {(m.local_start.date(), m.local_start.time(), m.local_end.time(), m.room)
           for m in occurrences(t, utc(2026, 1, 1), utc(2027, 1, 1))}
    assert got == {(m.date, m.start, m.end, m.room) for m in by_day.values()}


def test_the_plan_is_fitted_to_a_shorter_meeting() -> None:
    m = Meeting("CS1", utc(2026, 3, 2, 8), utc(2026, 3, 2, 8, 45), None, "UTC")
    plan = PlanConfig(snapshots=3, first_after_s=300, second_after_s=1200, session_length_s=3000, margin_s=60)
    fitted = fit_plan(plan, m)
    assert fitted.session_length_s == 2700 and fitted.snapshots == 3
    assert max(fitted.schedule(7)) <= 2700 - 60
    assert fit_plan(plan, Meeting("CS1", m.start, m.start + timedelta(hours=2), None, "UTC")) is plan
    short = Meeting("CS1", m.start, m.start + timedelta(minutes=10), None, "UTC")
    assert fit_plan(plan, short) is plan  # cannot be shortened that far: unchanged (the scheduler warns)
