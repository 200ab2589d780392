"""AAS dashboard entry point: navigation between the product's pages."""

import streamlit as st

st.set_page_config(page_title="AAS — attendance", page_icon="🎓", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/courses.py", title="Courses", icon=":material/menu_book:"),
    st.Page("pages/students.py", title="Students", icon=":material/school:"),
    st.Page("pages/live_session.py", title="Live Session", icon=":material/videocam:"),
    st.Page("pages/inspector.py", title="Pipeline Inspector", icon=":material/biotech:"),
    st.Page("pages/trends.py", title="Attendance Trends", icon=":material/trending_up:"),
    st.Page("pages/evaluation.py", title="Evaluation", icon=":material/science:"),
]

st.navigation(PAGES).run()
