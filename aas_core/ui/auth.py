"""Sign-in for the dashboard. Every page calls ``require_user`` first.

The signed-in user lives in ``st.session_state['aas_user']`` as an ``AuthUser`` (no
password, no hash; a keyed fingerprint of the account row). Tests sign in by putting the
``AuthUser`` that ``services.auth.to_auth_user`` returns there.

``require_user`` re-reads the account row on every run (``services.auth.still_valid``): a
disabled, erased, demoted or re-passworded account is signed out of every open tab at its
next rerun. Signing out, forced or not, clears the whole session state, so nothing of one
user (camera preview, picked student, evaluation results, ...) is left for the next person
who signs in on that tab.
"""

from __future__ import annotations

import streamlit as st

from aas_core.db.models import Role
from aas_core.services import in_transaction
from aas_core.services.auth import AuthUser, ServerBusy, SignInThrottled, authenticate, still_valid
from aas_core.ui.text import plain

SESSION_KEY = "aas_user"
ACCOUNT_CHANGED = "Your account was changed or disabled; please sign in again."


def current_user() -> AuthUser | None:
    user = st.session_state.get(SESSION_KEY)
    return user if isinstance(user, AuthUser) else None


def client_address() -> str:
    """The browser's IP address for the per-client sign-in limit ("unknown" on localhost/tests).

    Streamlit reports ``None`` for localhost; behind a reverse proxy every browser may share the
    proxy's address, so all of them then share one per-client budget.
    """
    try:
        ip = st.context.ip_address
    except Exception:  # no client context (bare script run): every such caller is one client
        ip = None
    return ip or "unknown"


def sign_out() -> None:
    """End the session: every per-user value goes, not just the user (nothing must survive)."""
    st.session_state.clear()


def login_form(url: str, notice: str | None = None) -> None:
    st.title("AAS — sign in")
    if notice:
        st.warning(notice)
    with st.form("login"):
        username = st.text_input("Username")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in", type="primary"):
            try:
                user = in_transaction(url, authenticate, username, password, client=client_address())
            except (SignInThrottled, ServerBusy) as exc:  # the message says how long to wait; no username check
                st.error(str(exc))
            else:
                if user is None:
                    st.error("Wrong username or password.")
                else:
                    # A fresh session: nothing left over from whoever used this tab before.
                    sign_out()
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
    fresh = in_transaction(database_url(), still_valid, user)
    if fresh is None:
        sign_out()
        login_form(database_url(), notice=ACCOUNT_CHANGED)
        st.stop()
    assert fresh is not None
    if fresh != user:  # e.g. a student account linked to its student since sign-in
        st.session_state[SESSION_KEY] = fresh
    user = fresh
    if roles and user.role not in roles and not user.is_admin:
        st.error(f"This page is for {', '.join(r.value for r in roles)} accounts.")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{plain(user.username)}** ({user.role.value})")
        if st.button("Sign out", key="aas_sign_out"):
            sign_out()
            st.rerun()
    return user
