"""Home: today's and recent sessions, this week's attendance, students at risk, and what the system runs on."""

from __future__ import annotations

from datetime import date

import streamlit as st

from aas_core.config import redact_url
from aas_core.db.models import Role
from aas_core.services import dashboard, reports
from aas_core.ui.auth import require_user
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
from aas_core.ui.widgets import nav_link, show_flashes


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

# --- headline figures ----------------------------------------------------------------------
if is_student:
    st.subheader(f"Your attendance, {plain(user.username)}")
    c1, c2, c3 = st.columns(3)
    c1.metric("Sessions recorded", len(all_records))
    c2.metric("Attendance rate (all)", "—" if figures.rate is None else f"{figures.rate:.0%}")
    c3.metric("This week", "—" if week_rate is None else f"{week_rate:.0%}")
    if not risky.empty:
        st.warning(f"Your attendance is below {reports.AT_RISK_DEFAULT:.0%} in "
                   f"{plain(', '.join(risky['course_code']))}.")
    if not all_records.empty:
        st.dataframe(all_records[["started_at", "course_code", "final_status", "presence", "override_reason"]].head(10),
                     hide_index=True, width="stretch")
else:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Courses", figures.n_courses)
    c2.metric("Students", figures.n_students)
    c3.metric("Sessions this week", int(week["session_id"].nunique()) if not week.empty else 0)
    c4.metric(f"Attendance {monday:%d %b}–{sunday:%d %b}", "—" if week_rate is None else f"{week_rate:.0%}",
              help="Share of attendance records with status attended, late or left early.")

    st.subheader("Today's and recent sessions")
    if sessions.empty:
        st.info("No sessions yet. Run one on **Live Session** (a camera plan or uploaded snapshots).")
    else:
        view = sessions.copy()
        view["today"] = view["started_at"].map(lambda t: "● today" if t.date() == today else "")
        st.dataframe(
            view[["today", "started_at", "course_code", "status", "snapshots", "rate", "attended", "late",
                  "left_early", "absent", "unknown_faces"]],
            hide_index=True, width="stretch",
            column_config={
                "today": st.column_config.TextColumn("", width="small"),
                "started_at": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm"),
                "course_code": st.column_config.TextColumn("Course"),
                "rate": st.column_config.ProgressColumn("Attendance", format="percent", min_value=0, max_value=1),
                "left_early": st.column_config.NumberColumn("left early"),
                "unknown_faces": st.column_config.NumberColumn("unknown faces"),
            })
    st.subheader(f"At risk (attendance < {reports.AT_RISK_DEFAULT:.0%})")
    if summary.empty:
        st.caption("No attendance recorded yet.")
    elif risky.empty:
        st.success("No student is below the threshold.")
    else:
        st.dataframe(risky[["course_code", "student_number", "student_name", "sessions", "rate", "absent", "late",
                            "left_early"]],
                     hide_index=True, width="stretch",
                     column_config={"course_code": st.column_config.TextColumn("Course"),
                                    "rate": st.column_config.ProgressColumn(
                                        "Attendance", format="percent", min_value=0, max_value=1)})

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
cols = st.columns(len(links))
for col, (page, label, icon) in zip(cols, links):
    with col:
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
