"""What a dashboard user sees when a page fails: an error id, never the error.

An uncaught exception's text can hold SQL, bound parameters (names, e-mails), file paths or
secrets, so ``run_page`` logs it with its traceback on the server under a short random id and
shows the user only that id to quote to an administrator (who finds it in the server log).
``.streamlit/config.toml`` also sets ``client.showErrorDetails = "none"`` for errors outside
``run_page`` (widget callbacks, fragment reruns).
"""

from __future__ import annotations

import logging
import secrets
from typing import Protocol

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

log = logging.getLogger("aas.ui")


class _Runnable(Protocol):
    def run(self) -> None: ...


def new_error_id() -> str:
    """8 hex characters: short enough to read out over the phone, unique enough in a log."""
    return secrets.token_hex(4)


def user_message(error_id: str) -> str:
    return f"Something went wrong (error id {error_id}). Please quote it to your administrator."


def run_page(page: _Runnable) -> None:
    """``page.run()``, turning an uncaught exception into a logged error id.

    st.stop, st.rerun and st.switch_page raise ``ScriptControlException`` subclasses to steer
    the script runner; those pass through untouched (they derive from BaseException, so
    ``except Exception`` would not catch them either: the explicit clause keeps it so).
    """
    try:
        page.run()
    except ScriptControlException:
        raise
    except Exception:
        error_id = new_error_id()
        log.exception("dashboard error id %s", error_id)
        st.error(user_message(error_id), icon=":material/error:")
