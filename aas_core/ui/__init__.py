"""Streamlit glue shared by the pages: cached resources and small drawing helpers.

Only wiring lives here; logic stays in the rest of ``aas_core``.
"""
