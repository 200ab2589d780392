"""Attendance Trends that read right: one point per session on a session axis, and an XLSX whose
times are real dates with the time zone stated."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import openpyxl
import pandas as pd

from aas_core.services import reports


def _records(starts: list[datetime]) -> pd.DataFrame:
    rows = []
    for k, t in enumerate(starts):
        for sn, st in (("s1", "attended"), ("s2", "late" if k % 2 else "absent")):
            rows.append({"session_id": k + 1, "course_code": "C1", "course_name": "One", "started_at": t,
                         "date": t.date(), "student_number": sn, "student_name": f"Name {sn}", "auto_status": st,
                         "final_status": st, "overridden": False, "overridden_by": None, "override_reason": None,
                         "presence": "✓", "best_similarity": 0.6})
    df = pd.DataFrame(rows, columns=reports.RECORD_COLUMNS)
    df["started_at"] = pd.to_datetime(df["started_at"])
    return df


def test_sessions_of_one_afternoon_are_points_on_a_session_axis() -> None:
    t0 = datetime(2026, 3, 2, 14, 0)
    df = _records([t0, t0 + timedelta(minutes=20), t0 + timedelta(minutes=45)])
    rates = reports.session_rates(df)
    assert list(rates["session"]) == ["03-02 14:00 C1 #1", "03-02 14:20 C1 #2", "03-02 14:45 C1 #3"]
    assert rates["session"].is_unique and list(rates["rate"]) == [0.5, 1.0, 0.5]


def test_xlsx_times_are_dates_in_utc() -> None:
    t0 = datetime(2026, 3, 2, 14, 5)
    df = _records([t0, t0 + timedelta(days=1)])
    wb = openpyxl.load_workbook(io.BytesIO(reports.to_xlsx_bytes(df)))
    for sheet in ("records", "per_session"):
        ws = wb[sheet]
        head = [c.value for c in ws[1]]
        assert "started_at (UTC)" in head and "started_at" not in head
        col = head.index("started_at (UTC)")
        cell = ws.cell(row=2, column=col + 1)
        assert isinstance(cell.value, datetime) and cell.value == t0
        assert cell.number_format == "yyyy-mm-dd hh:mm"
    records = wb["records"]
    head = [c.value for c in records[1]]
    assert records.cell(row=2, column=head.index("date (UTC)") + 1).value == datetime(2026, 3, 2)
