"""🔬 Pipeline Inspector."""

import streamlit as st

from aas_core.ui.resources import database_url

st.title("🔬 Pipeline Inspector")
database_url()
