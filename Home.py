"""AAS dashboard entry point: navigation between the product's pages."""

import streamlit as st

st.set_page_config(page_title="AAS — attendance", page_icon="🎓", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/courses.py", title="Courses", icon="📚"),
    st.Page("pages/students.py", title="Students", icon="🧑‍🎓"),
    st.Page("pages/live_session.py", title="Live Session", icon="🎥"),
    st.Page("pages/inspector.py", title="Pipeline Inspector", icon="🔬"),
    st.Page("pages/trends.py", title="Attendance Trends", icon="📈"),
    st.Page("pages/evaluation.py", title="Evaluation", icon="🧪"),
]

st.navigation(PAGES).run()
