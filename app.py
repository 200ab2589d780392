"""AAS dashboard server: ``streamlit run app.py`` serves Home.py plus the sign-in cookie routes.

``st.App`` (Streamlit >= 1.53, Starlette) adds HTTP routes next to Streamlit's own; the two in
``aas_core.ui.routes`` set and delete the HttpOnly session cookie that keeps a sign-in across a
reload or a typed URL. ``streamlit run Home.py`` still works, but a sign-in then lasts only as
long as the browser tab's connection (the sign-in page says so).
"""

import streamlit as st

from aas_core.ui.routes import lifespan, session_routes

app = st.App("Home.py", routes=session_routes(), lifespan=lifespan)
