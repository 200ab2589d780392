"""Services shared by the CLI and the dashboard: orchestration and every access check.

Pages and CLI commands call one service function per action; none of them opens a database
session itself. Service functions that compose inside a caller's transaction take an open
``Session`` (``privacy``, ``roster``); ``in_transaction`` runs one of them as a complete unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session

P = ParamSpec("P")
T = TypeVar("T")


def in_transaction(url: str, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(session, *args, **kwargs)`` in its own transaction: committed on return, rolled back on error."""
    from aas_core.db import session_scope

    with session_scope(url) as s:
        return fn(s, *args, **kwargs)


__all__: list[Any] = ["in_transaction"]
