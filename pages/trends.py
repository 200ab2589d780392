"""Attendance Trends: rates over time, per-student heatmap, late/left-early trends, similarity
distribution, students at risk, and CSV/XLSX downloads. Students see only their own rows."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from aas_core.db.models import Role
from aas_core.services import reports
from aas_core.ui.auth import require_user
from aas_core.ui.resources import database_url
from aas_core.ui.widgets import metric_row, show_flashes

user = require_user()
show_flashes()
url = database_url()
is_student = user.role == Role.STUDENT and not user.is_admin
st.title(":material/trending_up: " + ("My attendance" if is_student else "Attendance Trends"))
st.caption("Your status in each session over time, and the files to keep." if is_student else
           "Attendance over time per course and student, who is at risk, how sure the matches were, and the "
           "records as CSV or Excel. Filters are in the sidebar.")

# --- filters -------------------------------------------------------------------------------------
scope = reports.trend_scope(url, user)
everything, course_codes = scope.records, scope.course_codes

today = date.today()
first = everything["date"].min() if not everything.empty else today - timedelta(days=30)
with st.sidebar:
    st.header("Filters")
    picked = st.multiselect("Courses", course_codes, default=course_codes, key="trend_courses")
    rng = st.date_input("Sessions between", value=(min(first, today), today), key="trend_dates")
    start, end = (rng[0], rng[1]) if isinstance(rng, (tuple, list)) and len(rng) == 2 else (first, today)
    student = None
    if not is_student:
        subset = everything[everything["course_code"].isin(picked)] if not everything.empty else everything
        people = (subset[["student_number", "student_name"]].drop_duplicates().sort_values("student_number")
                  .itertuples(index=False)) if not subset.empty else []
        names = {sn: f"{sn} — {nm}" for sn, nm in people}
        student = st.selectbox("Student", [None, *names], key="trend_student",
                               format_func=lambda x, _n=names: "All students" if x is None else _n[x])
    risk = st.slider("At risk below", 0.0, 1.0, reports.AT_RISK_DEFAULT, 0.05, format="%.2f", key="trend_risk")

data = reports.trend_data(url, user, picked, start, end, student_number=student)
df, sims = data.records, data.similarities

if df.empty:
    st.info("No attendance records match these filters yet." if not everything.empty
            else "No attendance recorded yet: run a session on **Live Session**.")
    st.stop()

rates, summary = data.rates, data.summary
risky = reports.at_risk(summary, risk)

metric_row([("Sessions", df["session_id"].nunique()), ("Attendance rate", f"{reports.attendance_rate(df):.0%}"),
            ("Late", f"{(df['final_status'] == 'late').mean():.0%}"),
            ("Left early", f"{(df['final_status'] == 'left_early').mean():.0%}")])

STATUS_WORDS = {k: k.replace("_", " ") for k in reports.STATUSES}
#: Column names a person reads (the frames keep the export's names).
TABLE_LABELS = {
    "session_id": st.column_config.NumberColumn("Session #"), "course_code": st.column_config.TextColumn("Course"),
    "course_name": st.column_config.TextColumn("Course name"), "date": st.column_config.DateColumn("Date (UTC)"),
    "student_number": st.column_config.TextColumn("Student ID"), "student_name": st.column_config.TextColumn("Name"),
    "auto_status": st.column_config.TextColumn("Automatic"), "final_status": st.column_config.TextColumn("Final"),
    "overridden": st.column_config.CheckboxColumn("Overridden"),
    "overridden_by": st.column_config.TextColumn("Overridden by"),
    "override_reason": st.column_config.TextColumn("Reason"), "presence": st.column_config.TextColumn("Seen"),
    "sessions": st.column_config.NumberColumn("Sessions"), "attended": st.column_config.NumberColumn("Attended"),
    "late": st.column_config.NumberColumn("Late"), "left_early": st.column_config.NumberColumn("Left early"),
    "absent": st.column_config.NumberColumn("Absent"),
    "overrides": st.column_config.NumberColumn("Overrides"), "last_status": st.column_config.TextColumn("Last status"),
}

# --- charts ------------------------------------------------------------------------------------------
# One point per session on a session axis, in time order: on a time axis the sessions of one
# afternoon collapsed into a vertical stroke on a 24 h scale.
order = list(rates["session"])


def _session_axis(fig: go.Figure) -> None:
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=order, title="session (UTC)",
                     tickangle=-30 if len(order) > 4 else 0)
    fig.update_layout(legend_title=None, margin={"l": 10, "r": 10, "t": 50, "b": 10})


c1, c2 = st.columns(2)
with c1:
    fig = px.line(rates, x="session", y="rate", color="course_code", markers=True,
                  title="Attendance rate per session", labels={"rate": "attendance rate", "course_code": "course"},
                  hover_data={"records": True})
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.add_hline(y=risk, line_dash="dot", line_color="#dc2626")
    _session_axis(fig)
    st.plotly_chart(fig, width="stretch")
with c2:
    long = rates.melt(id_vars=["session", "course_code"], value_vars=["late_rate", "left_early_rate"],
                      var_name="kind", value_name="share")
    long["kind"] = long["kind"].map({"late_rate": "late", "left_early_rate": "left early"})
    fig = px.line(long, x="session", y="share", color="kind", line_dash="course_code", markers=True,
                  title="Late and left early per session", labels={"course_code": "course"},
                  color_discrete_map={"late": reports.STATUS_COLOURS["late"],
                                      "left early": reports.STATUS_COLOURS["left_early"]})
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", title="share of students")
    _session_axis(fig)
    st.plotly_chart(fig, width="stretch")

codes, labels = reports.status_matrix(df)
if not codes.empty:
    n = len(reports.STATUSES)
    scale = []
    for i, stt in enumerate(reports.STATUSES):
        scale += [(i / n, reports.STATUS_COLOURS[stt]), ((i + 1) / n, reports.STATUS_COLOURS[stt])]
    heat = go.Figure(go.Heatmap(
        z=codes.values, x=list(codes.columns), y=list(codes.index), text=labels.fillna("").values,
        hovertemplate="%{y}<br>%{x}<br>%{text}<extra></extra>", colorscale=scale, zmin=-0.5, zmax=n - 0.5,
        xgap=2, ygap=2, showscale=False))
    heat.update_layout(title="Final status per student and session", height=140 + 32 * len(codes),
                       margin={"l": 10, "r": 10, "t": 50, "b": 10},
                       xaxis={"type": "category", "tickangle": -30 if codes.shape[1] > 4 else 0, "title": None},
                       yaxis={"type": "category", "autorange": "reversed", "tickmode": "array",
                              "tickvals": list(codes.index), "title": None})
    st.plotly_chart(heat, width="stretch")
    st.markdown(" ".join(f"<span style='color:{c}'>■</span> {x.replace('_', ' ')} &nbsp;"
                         for x, c in reports.STATUS_COLOURS.items()), unsafe_allow_html=True)

c3, c4 = st.columns(2)
with c3:
    st.subheader(f"At risk (< {risk:.0%})")
    if risky.empty:
        st.success("Nobody is below the threshold.")
    else:
        cols = (["course_code"] if risky["course_code"].nunique() > 1 else []) + [
            "student_number", "student_name", "sessions", "rate"]
        st.dataframe(risky[cols], hide_index=True, width="stretch", column_config={
            **TABLE_LABELS, "rate": st.column_config.ProgressColumn("Attendance", format="percent", min_value=0,
                                                                    max_value=1)})
with c4:
    if sims.empty:
        st.caption("No face similarities recorded for these sessions.")
    else:
        sims = sims.assign(face=sims["matched"].map({True: "recognised", False: "unknown (best candidate)"}))
        fig = px.histogram(sims, x="similarity", color="face", nbins=20, barmode="overlay", opacity=0.75,
                           title="Similarity of faces seen", range_x=[0, 1],
                           color_discrete_map={"recognised": "#16a34a", "unknown (best candidate)": "#94a3b8"})
        fig.update_layout(bargap=0.05, legend_title=None)
        st.plotly_chart(fig, width="stretch")

st.subheader("Per student")
st.dataframe(summary.replace({"last_status": STATUS_WORDS}), hide_index=True, width="stretch", column_config={
    **TABLE_LABELS,
    "rate": st.column_config.ProgressColumn("Attendance", format="percent", min_value=0, max_value=1),
    "late_rate": st.column_config.NumberColumn("Late %", format="percent"),
    "left_early_rate": st.column_config.NumberColumn("Left early %", format="percent")})
with st.expander(f"All {len(df)} records"):
    st.dataframe(df.replace({"auto_status": STATUS_WORDS, "final_status": STATUS_WORDS}), hide_index=True,
                 width="stretch", column_config={
        **TABLE_LABELS, "started_at": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm"),
        "best_similarity": st.column_config.NumberColumn("Best similarity", format="%.2f")})


# --- downloads (each one audited) ----------------------------------------------------------------------
audit = {"courses": picked, "start": str(start), "end": str(end), "student": student or user.student_number}
stem = f"attendance_{start:%Y%m%d}-{end:%Y%m%d}"
st.caption("Downloads: one row per student and session; times in UTC (the workbook's time columns are dates "
           "Excel can sort and filter).")
d1, d2 = st.columns(2)
d1.download_button("Download CSV", data=reports.to_csv_bytes(df), file_name=f"{stem}.csv", mime="text/csv",
                   icon=":material/download:", on_click=reports.audit_export, args=(url, user, "csv", len(df)),
                   kwargs=audit, key="dl_csv")
d2.download_button("Download XLSX (with per-student sheet)", data=reports.to_xlsx_bytes(df, summary, rates),
                   file_name=f"{stem}.xlsx", icon=":material/download:", on_click=reports.audit_export,
                   args=(url, user, "xlsx", len(df)), kwargs=audit,
                   mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="dl_xlsx")
