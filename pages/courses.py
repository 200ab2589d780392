"""Courses: create courses and manage their rosters."""

import streamlit as st

from aas_core.db import repo, session_scope
from aas_core.ui.resources import database_url

st.title("📚 Courses")
url = database_url()
with st.form("new_course", clear_on_submit=True):
    code = st.text_input("Code", placeholder="CS101")
    name = st.text_input("Name", placeholder="Introduction to Computer Science")
    if st.form_submit_button("Create course") and code:
        try:
            with session_scope(url) as s:
                repo.add_course(s, code, name or code, actor="ui")
            st.toast(f"Course {code} created")
        except ValueError as exc:
            st.error(str(exc))
with session_scope(url) as s:
    rows = [{"code": c.code, "name": c.name, "students": len(c.enrollments)} for c in repo.list_courses(s)]
st.dataframe(rows, hide_index=True, width="stretch")
