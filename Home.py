"""AAS dashboard entry point: navigation between the product's pages."""

import streamlit as st

from aas_core.ui.errors import run_page

st.set_page_config(page_title="AAS — attendance", page_icon="🎓", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/courses.py", title="Courses", icon=":material/menu_book:"),
    st.Page("pages/rooms.py", title="Rooms", icon=":material/meeting_room:"),
    st.Page("pages/students.py", title="Students", icon=":material/school:"),
    st.Page("pages/live_session.py", title="Live Session", icon=":material/videocam:"),
    st.Page("pages/checkin.py", title="Check-in", icon=":material/how_to_reg:"),
    st.Page("pages/inspector.py", title="Pipeline Inspector", icon=":material/biotech:"),
    st.Page("pages/trends.py", title="Attendance Trends", icon=":material/trending_up:"),
    st.Page("pages/evaluation.py", title="Evaluation", icon=":material/science:"),
    st.Page("pages/follow_up.py", title="Follow-up", icon=":material/assignment_late:"),
    st.Page("pages/my_sessions.py", title="My sessions", icon=":material/fact_check:"),
    st.Page("pages/operations.py", title="Operations", icon=":material/monitor_heart:"),
]

# An uncaught error shows the user only an error id; the details go to the server log.
run_page(st.navigation(PAGES))
