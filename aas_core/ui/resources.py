"""Cached resources for the dashboard: settings, DB engine (one per process)."""

from __future__ import annotations

import streamlit as st

from aas_core.config import Settings, get_settings


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    return get_settings()


@st.cache_resource(show_spinner="Preparing the database…")
def database_url() -> str:
    """The configured database, schema upgraded once per process."""
    from aas_core.db import init_db

    url = settings().database_url
    init_db(url)
    return url
