"""Students: add students and enroll their faces."""

import streamlit as st

from aas_core.db import repo, session_scope
from aas_core.ui.resources import database_url

st.title("🧑‍🎓 Students")
url = database_url()
with session_scope(url) as s:
    rows = [{"id": x.student_number, "name": x.name, "samples": len(x.samples), "consent": x.has_consent}
            for x in repo.list_students(s)]
st.dataframe(rows, hide_index=True, width="stretch")
