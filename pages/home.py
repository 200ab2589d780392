"""Home: what is going on today, and what the system runs on."""

import streamlit as st

from aas_core.config import redact_url
from aas_core.db import repo, session_scope
from aas_core.ui.resources import database_url, settings

st.title("🎓 Automated Attendance")
url = database_url()
with session_scope(url) as s:
    courses = repo.list_courses(s)
    students = repo.list_students(s)
    sessions = repo.sessions_of(s)
c1, c2, c3 = st.columns(3)
c1.metric("Courses", len(courses))
c2.metric("Students", len(students))
c3.metric("Sessions", len(sessions))
st.caption(f"Database: `{redact_url(url)}` · models: `{settings().models_dir}`")
