"""🧪 Evaluation."""

import streamlit as st

from aas_core.ui.resources import database_url

st.title("🧪 Evaluation")
database_url()
