"""Home: today's and recent sessions, this week's attendance, students at risk, and what the system runs on."""

from __future__ import annotations

from datetime import date

import streamlit as st

from aas_core.config import redact_url
from aas_core.db.models import Role
from aas_core.domain.course_config import PlanConfig
from aas_core.services import dashboard, reports
from aas_core.ui.auth import require_user
from aas_core.ui.session_picture import how_it_works_lines, timeline_figure
from aas_core.ui.text import plain
from aas_core.ui.resources import (
    base_config,
    database_url,
    get_pipeline,
    loaded_pipelines,
    provider_report,
    session_providers,
    settings,
)
from aas_core.ui.widgets import metric_row, nav_link, show_flashes


@st.cache_data(show_spinner=False, ttl=300)
def _features(mdir: str) -> list[tuple[str, str | None]]:
    from aas_core.tools.health import FEATURE_LABELS, feature_availability

    return [(FEATURE_LABELS.get(k, k), v) for k, v in feature_availability(mdir).items()]


user = require_user()
show_flashes()
url = database_url()
cfg_settings = settings()
st.title(":material/school: Automated Attendance")

today = date.today()
is_student = user.role == Role.STUDENT and not user.is_admin
figures = dashboard.home_figures(url, user, today)
monday, sunday, week_rate = figures.monday, figures.sunday, figures.week_rate
all_records, week, sessions = figures.records, figures.week, figures.sessions
summary, risky = figures.summary, figures.at_risk
st.caption("Your attendance at a glance: every class session, your rate, and the courses where it is low."
           if is_student else
           "Today's and recent sessions, this week's attendance and the students falling behind; "
           "the menu on the left opens each task.")
#: Column names a person reads (the frames keep the service's names).
LABELS = {
    "started_at": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm"),
    "course_code": st.column_config.TextColumn("Course"),
    "student_number": st.column_config.TextColumn("Student ID"),
    "student_name": st.column_config.TextColumn("Name"),
    "sessions": st.column_config.NumberColumn("Sessions"),
    "final_status": st.column_config.TextColumn("Status"),
    "presence": st.column_config.TextColumn("Seen in snapshots",
                                            help="Per snapshot: ✓ seen, ✗ not seen, – no usable snapshot"),
    "override_reason": st.column_config.TextColumn("Reason (if changed by hand)"),
    "rate": st.column_config.ProgressColumn("Attendance", format="percent", min_value=0, max_value=1),
    "attended": st.column_config.NumberColumn("Attended"), "late": st.column_config.NumberColumn("Late"),
    "left_early": st.column_config.NumberColumn("Left early"), "absent": st.column_config.NumberColumn("Absent"),
    "unknown_faces": st.column_config.NumberColumn("Unknown faces"),
    "status": st.column_config.TextColumn("State"), "snapshots": st.column_config.NumberColumn("Snapshots"),
    "today": st.column_config.TextColumn("", width="small"),
}

# --- headline figures ----------------------------------------------------------------------
if is_student:
    st.subheader(f"Your attendance, {plain(user.username)}")
    metric_row([("Sessions recorded", len(all_records)),
                ("Attendance rate (all)", "—" if figures.rate is None else f"{figures.rate:.0%}"),
                ("This week", "—" if week_rate is None else f"{week_rate:.0%}")])
    if not risky.empty:
        st.warning(f"Your attendance is below {reports.AT_RISK_DEFAULT:.0%} in "
                   f"{plain(', '.join(risky['course_code']))}.")
    if not all_records.empty:
        mine = all_records[["started_at", "course_code", "final_status", "presence", "override_reason"]].head(10)
        mine = mine.assign(final_status=mine["final_status"].str.replace("_", " "))  # "left early", as said
        st.dataframe(mine, hide_index=True, width="stretch", column_config=LABELS)
else:
    metric_row([("Courses", figures.n_courses), ("Students", figures.n_students),
                ("Sessions this week", int(week["session_id"].nunique()) if not week.empty else 0),
                ("Attendance this week", "—" if week_rate is None else f"{week_rate:.0%}",
                 f"{monday:%d %b}–{sunday:%d %b}: share of attendance records with status attended, late or "
                 "left early.")], min_px=160)

    st.subheader("Today's and recent sessions")
    if sessions.empty:
        st.info("No sessions yet. Run one on **Live Session** (a camera plan or uploaded snapshots).")
    else:
        view = sessions.copy()
        view["today"] = view["started_at"].map(lambda t: "● today" if t.date() == today else "")
        st.dataframe(
            view[["today", "started_at", "course_code", "status", "snapshots", "rate", "attended", "late",
                  "left_early", "absent", "unknown_faces"]],
            hide_index=True, width="stretch", column_config=LABELS)
    st.subheader(f"At risk (attendance < {reports.AT_RISK_DEFAULT:.0%})")
    if summary.empty:
        st.caption("No attendance recorded yet.")
    elif risky.empty:
        st.success("No student is below the threshold.")
    else:
        st.dataframe(risky[["course_code", "student_number", "student_name", "sessions", "rate", "absent", "late",
                            "left_early"]],
                     hide_index=True, width="stretch", column_config=LABELS)

# --- how a session works (open by default until there is a session to look at) ---------------------
try:
    default_plan = PlanConfig.from_settings(cfg_settings)
except ValueError:  # AAS_FIRST_AFTER_S etc. that do not fit: the picture shows the built-in plan
    default_plan = PlanConfig()
with st.expander("How a session works", icon=":material/help:",
                 expanded=(all_records.empty if is_student else sessions.empty)):
    st.plotly_chart(timeline_figure(default_plan), width="stretch", config={"displayModeBar": False},
                    key="home_timeline")
    st.markdown("\n".join(f"- {line}" for line in how_it_works_lines(default_plan)))
    st.caption("Shown with this installation's default plan; each course sets its own on **Courses → "
               "Capture plan & rules**." if not is_student else "Your instructor sets the times of each course.")

# --- quick links -----------------------------------------------------------------------------
st.subheader("Go to")
links = ([("pages/courses.py", "Courses", ":material/menu_book:"),
          ("pages/students.py", "Students", ":material/school:"),
          ("pages/live_session.py", "Live Session", ":material/videocam:"),
          ("pages/inspector.py", "Pipeline Inspector", ":material/biotech:"),
          ("pages/trends.py", "Attendance Trends", ":material/trending_up:"),
          ("pages/evaluation.py", "Evaluation", ":material/science:")]
         if not is_student else [("pages/students.py", "My photos & consent", ":material/school:"),
                                 ("pages/trends.py", "My attendance", ":material/trending_up:")])
if user.is_admin:
    links.append(("pages/accounts.py", "Accounts", ":material/manage_accounts:"))
# A wrapping row: in equal columns the longer titles were cut ("Pipeline Inspe…") at 1400 px.
with st.container(horizontal=True, gap="small"):
    for page, label, icon in links:
        nav_link(page, label, icon)

# --- system ------------------------------------------------------------------------------------
if not is_student:
    st.subheader("System")
    prov = provider_report(cfg_settings)
    for msg in prov.messages:
        st.error(f"GPU expected but not used: {msg}")
    cfg, notes = base_config()
    a, b = st.columns(2)
    with a:
        st.markdown(f"**Profile:** `{cfg_settings.profile}` → `{cfg.profile}` (flow `{cfg.flow}`)")
        models = [f"faces: `{cfg.face_backend}` {cfg.face_model or ''}",
                  f"embedder: `{cfg.embedder}` {cfg.embed_model or ''}"]
        if cfg.flow == "persons":
            models.insert(0, f"persons: `{cfg.person_backend}` {cfg.person_model or ''}")
        if cfg.enhancer:
            which = "every face" if cfg.enhancer == "clahe" else f"faces < {cfg.sr_below_px} px"
            models.append(f"enhancer: `{cfg.enhancer}` {cfg.enhancer_model or ''} ({which})")
        st.markdown("\n".join(f"- {m}" for m in models))
        for n in notes:
            st.caption(n)
    with b:
        st.markdown(f"**ONNX Runtime provider:** `{prov.effective}`")
        st.caption(f"configured: {', '.join(prov.configured)} · available: {', '.join(prov.available) or 'none'}")
        st.markdown(f"**Database:** `{redact_url(url)}`")
        st.caption(f"images: `{cfg_settings.resolved(cfg_settings.data_dir)}` · "
                   f"models: `{cfg_settings.resolved(cfg_settings.models_dir)}`")
    with st.expander("What works on this installation"):
        for label, reason in _features(str(cfg_settings.resolved(cfg_settings.models_dir))):
            mark = ":green[:material/check_circle:]" if reason is None else ":orange[:material/warning:]"
            st.markdown(f"{mark} **{label}**" + (f" — {plain(reason)}" if reason else ""))
    loaded = loaded_pipelines()
    if loaded:
        models: dict[str, list[str]] = {}
        for pipe in loaded:
            models.update(session_providers(pipe))
        st.markdown("**Models loaded:** " + " · ".join(
            f"`{name}` on {', '.join(p.replace('ExecutionProvider', '') for p in ps)}" for name, ps in models.items()))
    else:
        st.caption("Models load on first use (Live Session, enrollment, Inspector).")
        if st.button("Load models now"):
            try:
                get_pipeline(cfg)
                st.rerun()
            except Exception as exc:  # noqa: BLE001 - show the reason (missing weights etc.)
                st.error(f"Could not load the models: {plain(exc)}")
