"""The Courses page's timetable section: next meetings, missed ones, the editor and the import.

One call from ``pages/courses.py`` (``timetable_section``); every read and write is one call
of ``services.timetable`` (access-checked there: the course's instructor or an admin).
"""

from __future__ import annotations

import math
from datetime import date, time
from typing import Any

import pandas as pd
import streamlit as st

from aas_core.domain.timetable import WEEKDAYS, TimetableError
from aas_core.services import rooms as rooms_svc
from aas_core.services import timetable as svc
from aas_core.services.auth import AuthUser
from aas_core.ui.text import plain
from aas_core.ui.widgets import flash

__all__ = ["timetable_section"]


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()) or \
        v is pd.NaT


def _time(v: Any) -> time | None:
    if _blank(v):
        return None
    if isinstance(v, time):
        return v
    return time.fromisoformat(str(v))


def _date(v: Any) -> date | None:
    if _blank(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.date()
    return v if isinstance(v, date) else date.fromisoformat(str(v))


def _dates(values: list[date]) -> pd.Series:
    # a date column must be datetime64 for the editor even when empty (an empty list is float)
    return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)), dtype="datetime64[ns]")


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [r for r in df.to_dict("records") if not all(_blank(v) for v in r.values())]


def timetable_section(url: str, user: AuthUser, code: str) -> None:
    """Next meetings and missed ones, then the weekly / cancelled / extra editor and the import."""
    tt, version = svc.get_timetable(url, user, code)
    room_names = rooms_svc.room_names(url, user)

    if tt is None:
        st.info("No timetable yet: sessions of this course start only when someone starts them. Enter the weekly "
                "meetings below or import a CSV or iCalendar (.ics) file; `aas scheduler` then opens each "
                "meeting's session by itself.")
    else:
        nxt = svc.next_meetings(url, user, code, 5)
        st.markdown(f"**Next meetings** ({plain(tt.timezone)})")
        if nxt:
            st.dataframe([{"date": m.local_start.strftime("%a %Y-%m-%d"), "time": f"{m.local_start:%H:%M}-"
                           f"{m.local_end:%H:%M}", "room": m.room or "—", "extra": "extra" if m.extra else ""}
                          for m in nxt], hide_index=True, width="stretch", column_config={
                "date": st.column_config.TextColumn("Date"), "time": st.column_config.TextColumn("Time"),
                "room": st.column_config.TextColumn("Room"), "extra": st.column_config.TextColumn("One-off")})
        else:
            st.caption("No further meeting this term.")
        missed = svc.missed_meetings(url, user, code)
        if missed:
            st.warning(f"{len(missed)} meeting(s) had no session because no scheduler was running at their start, "
                       f"e.g. {plain(missed[0].start.strftime('%Y-%m-%d %H:%M'))} UTC: {plain(missed[0].reason)}")

    with st.form(f"timetable_{code}"):
        st.markdown("**Weekly meetings** (local times in the course's time zone; right across daylight-saving changes)")
        c1, c2, c3 = st.columns(3)
        zone = c1.text_input("Time zone (IANA)", value=tt.timezone if tt else "UTC",
                             help="e.g. Europe/Berlin, America/New_York")
        term_start = c2.date_input("Term starts", value=tt.term_start if tt else date.today())
        term_end = c3.date_input("Term ends (included)", value=tt.term_end if tt else date.today())
        room_col = st.column_config.SelectboxColumn("Room", options=room_names, help="Rooms are managed on Rooms")
        weekly = st.data_editor(pd.DataFrame(
            [{"day": WEEKDAYS[w.weekday], "start": w.start, "end": w.end, "room": w.room} for w in (tt.weekly if tt else [])],
            columns=["day", "start", "end", "room"]), num_rows="dynamic", hide_index=True, width="stretch",
            key=f"tt_weekly_{code}", column_config={
                "day": st.column_config.SelectboxColumn("Day", options=list(WEEKDAYS), required=True),
                "start": st.column_config.TimeColumn("Starts", format="HH:mm", step=300, required=True),
                "end": st.column_config.TimeColumn("Ends", format="HH:mm", step=300, required=True),
                "room": room_col})
        a, b = st.columns([1, 2])
        with a:
            st.markdown("**Cancelled dates**")
            cancelled = st.data_editor(pd.DataFrame({"date": _dates(tt.cancelled if tt else [])}),
                                       num_rows="dynamic", hide_index=True, width="stretch", key=f"tt_cancel_{code}",
                                       column_config={"date": st.column_config.DateColumn("Date", format="YYYY-MM-DD")})
        with b:
            st.markdown("**Extra meetings** (one-off)")
            extras = list(tt.extra if tt else [])
            extra = st.data_editor(pd.DataFrame(
                {"date": _dates([x.date for x in extras]), "start": pd.Series([x.start for x in extras], dtype=object),
                 "end": pd.Series([x.end for x in extras], dtype=object),
                 "room": pd.Series([x.room for x in extras], dtype=object)}), num_rows="dynamic", hide_index=True, width="stretch",
                key=f"tt_extra_{code}", column_config={
                    "date": st.column_config.DateColumn("Date", format="YYYY-MM-DD", required=True),
                    "start": st.column_config.TimeColumn("Starts", format="HH:mm", step=300, required=True),
                    "end": st.column_config.TimeColumn("Ends", format="HH:mm", step=300, required=True),
                    "room": room_col})
        if st.form_submit_button("Save timetable", type="primary"):
            try:
                data = {"timezone": zone.strip(), "term_start": term_start, "term_end": term_end,
                        "weekly": [{"weekday": r["day"], "start": _time(r["start"]), "end": _time(r["end"]),
                                    "room": None if _blank(r["room"]) else r["room"]} for r in _rows(weekly)],
                        "cancelled": [d for d in (_date(r["date"]) for r in _rows(cancelled)) if d],
                        "extra": [{"date": _date(r["date"]), "start": _time(r["start"]), "end": _time(r["end"]),
                                   "room": None if _blank(r["room"]) else r["room"]} for r in _rows(extra)]}
                svc.set_timetable(url, user, code, data, expected_version=version)
            except (TimetableError, ValueError) as exc:  # StaleEdit is a ValueError too
                st.error(f"Not saved: {plain(exc)}")
            else:
                flash("Timetable saved", ":material/calendar_month:")
                st.rerun()

    st.markdown("**Import** a CSV (columns `what,day,start,end,room`) or an iCalendar file (.ics, recurrences and "
                "their exceptions included); it replaces the timetable above.")
    up = st.file_uploader("Timetable file", type=["csv", "ics"], key=f"tt_file_{code}")
    if up is not None and st.button(f"Import {plain(up.name)}", key=f"tt_import_{code}"):
        try:
            result = svc.import_timetable(url, user, code, up.name, up.getvalue(), expected_version=version)
        except (TimetableError, ValueError) as exc:
            st.error(f"{plain(up.name)} not imported: {plain(exc)}")
        else:
            for note in result.notes:
                flash(plain(note), ":material/info:")
            flash(f"Timetable imported: {result.meetings} meetings", ":material/calendar_month:")
            st.rerun()
    if tt is not None and st.button("Remove the timetable", key=f"tt_remove_{code}",
                                    help="Sessions are then started only by hand"):
        try:
            svc.set_timetable(url, user, code, None, expected_version=version)
        except ValueError as exc:
            st.error(plain(exc))
        else:
            flash("Timetable removed", ":material/event_busy:")
            st.rerun()
