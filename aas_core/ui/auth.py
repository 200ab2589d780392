"""Sign-in for the dashboard. Every page calls ``require_user`` first.

The signed-in user lives in ``st.session_state['aas_user']`` as an ``AuthUser`` (no
password, no hash). Tests sign in by putting an ``AuthUser`` there.
"""

from __future__ import annotations

import streamlit as st

from aas_core.db.models import Role
from aas_core.services import in_transaction
from aas_core.services.auth import AuthUser, authenticate

SESSION_KEY = "aas_user"


def current_user() -> AuthUser | None:
    user = st.session_state.get(SESSION_KEY)
    return user if isinstance(user, AuthUser) else None


def login_form(url: str) -> None:
    st.title("AAS — sign in")
    with st.form("login"):
        username = st.text_input("Username")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in", type="primary"):
            user = in_transaction(url, authenticate, username, password)
            if user is None:
                st.error("Wrong username or password.")
            else:
                st.session_state[SESSION_KEY] = user
                st.rerun()
    st.caption("No account yet? An administrator creates the first one with `aas user add NAME --role admin`.")


def require_user(*roles: Role) -> AuthUser:
    """The signed-in user, or show the sign-in form and stop the page."""
    from aas_core.ui.resources import database_url

    user = current_user()
    if user is None:
        login_form(database_url())
        st.stop()
    assert user is not None
    if roles and user.role not in roles and not user.is_admin:
        st.error(f"This page is for {', '.join(r.value for r in roles)} accounts.")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{user.username}** ({user.role.value})")
        if st.button("Sign out", key="aas_sign_out"):
            del st.session_state[SESSION_KEY]
            st.rerun()
    return user
