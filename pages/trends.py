"""📈 Attendance Trends."""

import streamlit as st

from aas_core.ui.resources import database_url

st.title("📈 Attendance Trends")
database_url()
