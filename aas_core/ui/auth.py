"""Sign-in for the dashboard: who is signed in to this browser tab, and the pages that sign in.

Every page calls ``require_user`` first; ``Home.py`` calls ``resolve`` to build the navigation
(only the pages the user's role may open) and hands its answer to the page's ``require_user``
(``resolved``), so a page run reads the session once.

Where the sign-in lives (see ``services.auth`` "server-side sessions" and ``ui.routes``):

* served by ``app.py`` (``st.App``): in an HttpOnly cookie naming a server-side session. It
  survives a reload or a typed URL, expires (idle and absolute) and ends in every tab when the
  user signs out, is disabled, gets a new password or role;
* always, also in ``AppTest`` and ``streamlit run Home.py``: ``st.session_state['aas_user']`` as
  an ``AuthUser`` bound to its session row (``session_id``), re-checked on every run. Tests sign
  in by putting the ``AuthUser`` that ``services.auth.to_auth_user`` returns there (no session
  row: ``still_valid`` re-checks its account fingerprint instead).

Signing in and out, forced or not, clears the whole session state, so nothing of one user
(camera preview, picked student, evaluation results, ...) is left for the next person.
"""

from __future__ import annotations

import contextvars
import hmac
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlparse

import streamlit as st

from aas_core.db.models import Role
from aas_core.services import in_transaction
from aas_core.services.auth import (
    CHANGED,
    AuthUser,
    NoAccount,
    ServerBusy,
    SessionEnded,
    SessionPolicy,
    SignInThrottled,
    Ticket,
    WeakPassword,
    end_session,
    password_sign_in,
    session_user,
    sso_sign_in,
    still_valid,
)
from aas_core.ui import routes
from aas_core.ui.text import plain

SESSION_KEY = "aas_user"
ACCOUNT_CHANGED = CHANGED
SIGN_IN_TITLE = "AAS — sign in"

#: What ``Home.py`` resolved for this run (user, notice); pages reuse it instead of reading again.
_RESOLVED: contextvars.ContextVar[tuple[AuthUser | None, str | None]] = contextvars.ContextVar("aas_resolved")


def sentence(text: str) -> str:
    """First letter upper case, the rest as it was (``str.capitalize`` would lower-case names)."""
    return text[:1].upper() + text[1:]


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
    return ip if isinstance(ip, str) and ip else "unknown"  # AppTest answers with a stand-in object


def _client_ip() -> str | None:
    ip = client_address()
    return None if ip == "unknown" else ip


def _cookie_token() -> str | None:
    try:
        cookies = st.context.cookies
    except Exception:  # no client context
        return None
    for name in routes.COOKIE_NAMES:
        value = cookies.get(name)
        if isinstance(value, str) and value:  # AppTest's context answers with stand-in objects
            return value
    return None


def _policy() -> SessionPolicy:
    from aas_core.ui.resources import settings

    return SessionPolicy.from_settings(settings())


def sign_out() -> None:
    """Forget this tab's sign-in: every per-user value goes, not just the user (nothing must survive)."""
    st.session_state.clear()


# --- who is signed in ----------------------------------------------------------------------------

def resolve() -> tuple[AuthUser | None, str | None]:
    """(the signed-in user of this tab or None, why a sign-in ended — for the sign-in page).

    The session cookie wins (it is what a reload brings); without one, the tab's own sign-in
    (``session_state``) is re-checked. An ended session clears the tab's state.
    """
    from aas_core.ui.resources import database_url

    url = database_url()
    token = _cookie_token()
    cached = current_user()
    try:
        if token:
            user = in_transaction(url, session_user, token=token, policy=_policy())
        elif cached is not None and cached.session_id is not None:
            user = in_transaction(url, session_user, session_id=cached.session_id, policy=_policy())
        elif cached is not None:
            fresh = in_transaction(url, still_valid, cached)
            if fresh is None:
                raise SessionEnded(ACCOUNT_CHANGED)
            user = fresh
        else:
            return None, None
    except SessionEnded as ended:
        if cached is not None:
            sign_out()
        return None, str(ended)
    if cached is None or cached != user or cached.session_id != user.session_id:
        if cached is not None and cached.id != user.id:
            sign_out()  # another account signed in to this browser: nothing of the previous one stays
        st.session_state[SESSION_KEY] = user
    return user, None


@contextmanager
def resolved(user: AuthUser | None, notice: str | None) -> Iterator[None]:
    """Within this block ``require_user`` uses ``(user, notice)`` (Home.py resolved it already)."""
    token = _RESOLVED.set((user, notice))
    try:
        yield
    finally:
        _RESOLVED.reset(token)


def require_user(*roles: Role) -> AuthUser:
    """The signed-in user, or show the sign-in page (or the forced password change) and stop."""
    from aas_core.ui.resources import database_url

    user, notice = _RESOLVED.get(None) or resolve()
    if user is None:
        login_form(database_url(), notice=notice)
        st.stop()
    assert user is not None
    if user.must_change_password:
        change_password_form(user, forced=True)
        st.stop()
    if roles and user.role not in roles and not user.is_admin:
        # Not in this user's menu (Home.PAGES); reached only by a page run on its own.
        st.title(":material/block: Not for your account")
        st.error(f"This page is for {', '.join(r.value for r in roles)} accounts.")
        st.stop()
    _account_box(user)
    return user


def _account_box(user: AuthUser) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{plain(user.username)}** ({user.role.value})")
        left, right = st.columns(2)
        if left.button("Sign out", key="aas_sign_out"):
            _sign_out_session(user)
        if right.button("Password", key="aas_change_password", help="Choose a new password"):
            _password_dialog(user)


def _sign_out_session(user: AuthUser) -> None:
    """End the session on the server (every tab of it), then this tab; the browser drops the cookie."""
    from aas_core.ui.resources import database_url

    if user.session_id is not None:
        in_transaction(database_url(), end_session, session_id=user.session_id)
    sign_out()
    if routes.MOUNTED:
        _browser_to(routes.END_PATH)
        st.stop()
    st.rerun()


# --- moving the browser (the cookie can only be set by an HTTP response) ---------------------------

def _browser_to(url: str) -> None:
    """Send the browser to ``url`` (same origin). Uses the message ``st.login``/``st.logout`` send
    (the frontend sets ``window.location.href``): Streamlit has no public call for it. The
    Chromium tests in ``tests/browser/test_signin.py`` fail if a Streamlit upgrade changes it."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return
    msg = ForwardMsg()
    msg.auth_redirect.url = url
    ctx.enqueue(msg)


def _this_path() -> str:
    try:
        url = st.context.url
    except Exception:
        url = None
    return routes.safe_next(urlparse(url).path if url else "/")


def _signed_in(ticket: Ticket) -> None:
    """A fresh tab state with the new user; with ``app.py``, the browser fetches its cookie."""
    sign_out()
    st.session_state[SESSION_KEY] = ticket.user
    if routes.MOUNTED:
        _browser_to(f"{routes.START_PATH}?ticket={quote(ticket.ticket)}&next={quote(_this_path())}")
        st.info("Signing you in…")
        st.stop()
    st.rerun()


# --- the sign-in page ------------------------------------------------------------------------------

def sso_settings() -> dict[str, Any]:
    """``[auth]`` (Streamlit's OIDC client) and ``[aas_sso]`` (how AAS maps users) from secrets."""
    from aas_core.ui.widgets import secrets_mapping

    sec = secrets_mapping()
    return {"auth": sec.get("auth") or {}, "aas": sec.get("aas_sso") or {}}


def sso_providers() -> list[tuple[str, str]]:
    """(provider name for ``st.login``, button label) for each configured OpenID Connect provider."""
    conf = sso_settings()
    auth, aas = conf["auth"], conf["aas"]
    if not auth.get("redirect_uri") or not auth.get("cookie_secret"):
        return []
    label = str(aas.get("label") or "single sign-on")
    out = [("default", label)] if auth.get("client_id") else []
    out += [(name, f"{label} ({name})" if out else label) for name, sec in auth.items()
            if isinstance(sec, dict) and sec.get("client_id") and name != "client_kwargs"]
    return out


def _sso_identity() -> dict[str, Any] | None:
    try:
        info = st.user.to_dict()
    except Exception:  # no [auth] section, no client context
        return None
    return info if info.get("is_logged_in") else None


def _sso_handoff(url: str) -> None:
    """The identity provider sent the browser back: map it to an AAS account, or say why not."""
    claims = _sso_identity()
    if claims is None:
        return
    link = bool(sso_settings()["aas"].get("link_by_verified_email", True))
    try:
        ticket = in_transaction(url, sso_sign_in, claims, client=_client_ip(), policy=_policy(), link_by_email=link)
    except NoAccount as exc:
        st.error(plain(str(exc)))
        if st.button("Use another account", key="aas_sso_logout"):
            st.logout()
        return
    _signed_in(ticket)


def login_form(url: str, notice: str | None = None) -> None:
    st.title(SIGN_IN_TITLE)
    if notice:
        st.warning(notice)
    _sso_handoff(url)
    providers = sso_providers()
    for name, label in providers:
        if st.button(f"Sign in with {label}", key=f"aas_sso_{name}", type="primary", width="stretch"):
            st.login(name)
    if providers:
        st.caption("Or with an AAS password:")
    with st.form("login"):
        username = st.text_input("Username")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Sign in", type="primary" if not providers else "secondary"):
            try:
                ticket = in_transaction(url, password_sign_in, username, password, client=_client_ip(),
                                        policy=_policy())
            except (SignInThrottled, ServerBusy) as exc:  # the message says how long to wait; no username check
                st.error(str(exc))
            except SessionEnded as exc:
                st.error(str(exc))
            else:
                if ticket is None:
                    st.error("Wrong username or password.")
                else:
                    _signed_in(ticket)
    if not routes.MOUNTED:
        st.caption("This server was started without `app.py`: a sign-in lasts only until this tab is reloaded.")
    elif _insecure_connection():
        st.warning("This connection is not encrypted. Ask your administrator to serve AAS over HTTPS.")
    st.caption("No account, or forgot your password? Ask an AAS administrator.")


def _insecure_connection() -> bool:
    try:
        url = st.context.url or ""
    except Exception:
        return False
    host = urlparse(url).hostname or ""
    return url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1")


# --- passwords -------------------------------------------------------------------------------------

def change_password_form(user: AuthUser, *, forced: bool = False) -> None:
    """Choose a new password (forced after an administrator's reset)."""
    from aas_core.services.accounts import change_own_password
    from aas_core.services.auth import AccessDenied
    from aas_core.ui.resources import database_url

    if forced:
        st.title("Choose a new password")
        st.info(f"An administrator reset the password of **{plain(user.username)}**. "
                "Choose your own to continue.")
    with st.form("aas_new_password"):
        current = st.text_input("Temporary password" if forced else "Current password", type="password")
        new = st.text_input("New password", type="password",
                            help="At least 10 characters and hard to guess: a few unrelated words work well.")
        again = st.text_input("New password again", type="password")
        if st.form_submit_button("Set new password", type="primary"):
            if new != again:
                st.error("The two new passwords differ.")
            else:
                try:
                    change_own_password(database_url(), user, current, new)
                except (WeakPassword, AccessDenied, ServerBusy) as exc:
                    st.error(sentence(plain(str(exc))))
                else:
                    from aas_core.ui.widgets import flash

                    st.session_state[SESSION_KEY] = _without_forced_change(user)
                    flash("Your new password is set.")
                    st.rerun()
    if forced and st.button("Sign out", key="aas_sign_out_forced"):
        _sign_out_session(user)


def _without_forced_change(user: AuthUser) -> AuthUser:
    from dataclasses import replace

    return replace(user, must_change_password=False)


@st.dialog("Choose a new password")
def _password_dialog(user: AuthUser) -> None:
    change_password_form(user)


# --- first run -------------------------------------------------------------------------------------

_setup_lock = threading.Lock()
_setup_code: str | None = None


def setup_code() -> str:
    """The one-time code the first-run page asks for, printed to the server's console (log).

    Whoever reaches the server before its administrator must not be able to make themselves the
    administrator: the code proves access to the server's console. One per server process.
    """
    global _setup_code
    from aas_core.services.accounts import temporary_password

    with _setup_lock:
        if _setup_code is None:
            _setup_code = temporary_password()[:9]  # two groups of four: ~40 bits, typed by a person
            print(f"\nAAS first run: no account exists yet. Open the dashboard and create the administrator "
                  f"with the setup code  {_setup_code}\n", file=sys.stderr, flush=True)
        return _setup_code


_SAW_FIRST_RUN = "aas_saw_first_run"
ALREADY_SET_UP = "AAS is already set up (the administrator was created in another browser): sign in with your account."


def first_run_over(notice: str | None) -> str | None:
    """The sign-in page's notice for a tab that showed the first-run page while another browser
    created the administrator (its form is gone, so it is told why)."""
    if st.session_state.pop(_SAW_FIRST_RUN, False):
        return notice or ALREADY_SET_UP
    return notice


def first_run_page() -> None:
    """Create the first administrator (shown only while no account exists)."""
    from aas_core.services.accounts import AlreadySetUp, create_first_admin
    from aas_core.services.auth import SIGN_IN_LIMITS
    from aas_core.ui.resources import database_url

    code = setup_code()
    st.session_state[_SAW_FIRST_RUN] = True
    st.title("Welcome to AAS")
    st.subheader("Create the administrator account")
    st.markdown("No account exists yet. The account you create now is the **administrator**: it creates the "
                "instructor and student accounts and sees everything. This page is shown only until then.\n\n"
                "You need the **setup code** printed in the server's console (the terminal where `make run` "
                "runs): it shows that you run this server.")
    with st.form("aas_first_admin"):
        entered = st.text_input("Setup code", help="Printed in the server's console (where `make run` runs) "
                                "as “AAS first run: … setup code”.")
        username = st.text_input("Administrator username", value="admin")
        email = st.text_input("E-mail (optional)", help="Lets this account also use single sign-on, when configured.")
        password = st.text_input("Password", type="password",
                                 help="At least 10 characters and hard to guess: a few unrelated words work well.")
        again = st.text_input("Password again", type="password")
        if st.form_submit_button("Create administrator", type="primary"):
            client = client_address()
            try:
                SIGN_IN_LIMITS.check("first-run", client)
            except SignInThrottled as exc:
                st.error(str(exc))
                return
            if not hmac.compare_digest(entered.strip().lower(), code):
                SIGN_IN_LIMITS.failed("first-run", client)
                st.error("Wrong setup code: copy it from the server's console.")
            elif password != again:
                st.error("The two passwords differ.")
            else:
                try:
                    ticket = create_first_admin(database_url(), username, password, email=email or None,
                                                client=_client_ip(), policy=_policy())
                except AlreadySetUp as exc:
                    st.warning(str(exc))
                    st.button("Go to sign-in", key="aas_setup_done")
                except (WeakPassword, ValueError, ServerBusy) as exc:
                    st.error(sentence(plain(str(exc))))
                else:
                    _signed_in(ticket)


def new_setup_code_for_tests() -> str:
    """Forget the code (tests run several first runs in one process)."""
    global _setup_code
    with _setup_lock:
        _setup_code = None
    return setup_code()


__all__ = ["ACCOUNT_CHANGED", "SESSION_KEY", "client_address", "current_user", "first_run_page", "login_form",
           "require_user", "resolve", "resolved", "sign_out"]
