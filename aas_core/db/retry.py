"""Retry a unit of database work when the connection dropped under it.

``pool_pre_ping`` (see :mod:`aas_core.db.engine`) already replaces connections that died
while idle in the pool (MariaDB restart, ``wait_timeout``, a killed connection). It cannot
help an operation whose connection dies *while it runs*: that operation fails with an
``OperationalError`` and its transaction is rolled back. :func:`retry_db` re-runs the whole
unit of work (which must open its own ``session_scope``, so a retry starts a fresh
transaction) when the error is a lost connection, and re-raises anything else at once:
integrity errors and bugs are never retried.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)
T = TypeVar("T")

# MySQL/MariaDB client error codes meaning "the connection is gone" (plus lock timeouts/deadlocks,
# after which the transaction was rolled back by the server and can simply be run again).
_MYSQL_RETRYABLE = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout exceeded
    1213,  # deadlock found
    1927,  # connection was killed (MariaDB)
    2002, 2003, 2006, 2013, 2055,  # can't connect / server has gone away / lost connection
}


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a lost connection (or a deadlock) that a fresh transaction may fix."""
    # Hand-written on purpose: which driver errors mean "run it again" is our policy, and
    # neither SQLAlchemy nor tenacity knows it (tenacity only asks this predicate).
    if isinstance(exc, DisconnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        orig = exc.orig
        code = orig.args[0] if orig is not None and getattr(orig, "args", None) else None
        if isinstance(code, int) and code in _MYSQL_RETRYABLE:
            return True
        msg = str(orig).lower()
        return any(m in msg for m in ("database is locked", "gone away", "lost connection", "connection was killed",
                                      "server closed", "broken pipe", "connection reset"))
    return False


def retry_db(fn: Callable[[], T], attempts: int = 3, delay: float = 0.5, *, backoff: float = 2.0,
             on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """Call ``fn()``; on a transient database error wait and call it again, up to ``attempts`` times.

    ``fn`` must be a complete unit of work (open and commit its own ``session_scope``) so
    that running it twice is safe. Non-transient errors propagate immediately. Waits grow
    ``delay``, ``delay * backoff``, ... (tenacity does the looping; only the policy is ours).
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        assert exc is not None  # only failed attempts are retried
        log.warning("database connection lost (%s); retry %d/%d in %.1fs",
                    exc.__class__.__name__, state.attempt_number, attempts - 1, state.upcoming_sleep)
        if on_retry is not None:
            on_retry(state.attempt_number, exc)

    retryer = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=delay, exp_base=backoff),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,  # the caller sees the database error itself, not tenacity's RetryError
    )
    return retryer(fn)


def retrying(fn: Callable[..., T], attempts: int = 3, delay: float = 0.5) -> Callable[..., T]:
    """``fn`` wrapped with :func:`retry_db`: ``retrying(svc.finalize)(session_id, actor=...)``.

    Only for idempotent units of work. Of ``SessionService``: ``store_snapshot`` (a retake
    replaces the same index), ``record_missing``, ``process_snapshot``, ``finalize`` and
    ``resume_or_close`` are; ``start`` is NOT (a retry after a commit whose reply was lost
    would open a second session).
    """

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> T:
        return retry_db(lambda: fn(*args, **kwargs), attempts=attempts, delay=delay)

    return wrapper
