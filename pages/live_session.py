"""🎥 Live Session."""

import streamlit as st

from aas_core.ui.resources import database_url

st.title("🎥 Live Session")
database_url()
