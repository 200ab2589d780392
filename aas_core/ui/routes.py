"""The two HTTP routes of the dashboard's sign-in cookie (mounted by ``app.py`` through ``st.App``).

Streamlit pages talk to the browser over a websocket, which cannot set a cookie. So a page that
has just signed someone in (password or single sign-on) sends the browser, with the same
message ``st.login`` uses, to

* ``GET /aas/session/start?ticket=T&next=/page`` — redeems the one-time ticket
  (``services.auth.redeem_ticket``: 60 s, single use, same client address) and answers with a
  redirect that sets the session cookie: random token, ``HttpOnly`` (no script reads it),
  ``SameSite=Strict``, ``Secure`` (and the ``__Host-`` name prefix) over HTTPS and on
  localhost, ``Max-Age`` = the absolute session length. The database keeps only the token's
  SHA-256. Streamlit's own identity cookie from ``st.login`` is deleted in the same response:
  from then on the AAS session alone says who is signed in (and it expires and can be revoked).
* ``GET /aas/session/end`` — revokes the session of the cookie (if any) and deletes the cookies.

Both refuse requests another site started (``Sec-Fetch-Site`` other than ``same-origin``), so
no page elsewhere can sign a visitor in to an attacker's account or out of their own.

``MOUNTED`` is true only while the ``st.App`` serving these routes runs (its lifespan); pages
run by ``AppTest`` or ``streamlit run Home.py`` see False and keep the sign-in in the tab's
session state (it then ends with the tab, as before).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

START_PATH = "/aas/session/start"
END_PATH = "/aas/session/end"
#: Cookie names: with the ``__Host-`` prefix the browser accepts it only Secure, for this exact
#: host and path ``/`` (no subdomain can set or shadow it); without it on plain HTTP.
SECURE_COOKIE = "__Host-aas_session"
PLAIN_COOKIE = "aas_session"
COOKIE_NAMES = (SECURE_COOKIE, PLAIN_COOKIE)
#: Where ``next`` may point: a page path of this app, nothing else (no scheme, host or "//").
_SAFE_NEXT = re.compile(r"/[A-Za-z0-9_\-]{0,80}")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}

MOUNTED = False


def safe_next(path: str | None) -> str:
    return path if path and _SAFE_NEXT.fullmatch(path) else "/"


def _settings() -> Any:
    from aas_core.config import get_settings

    return get_settings()


def cookie_secure(request: Request) -> bool:
    mode = _settings().session_cookie_secure
    if mode in ("always", "never"):
        return mode == "always"
    return request.url.scheme == "https" or (request.url.hostname or "") in _LOOPBACK


def _same_origin(request: Request) -> bool:
    """A navigation from a page of this app (or typed by the user: no header from old browsers)."""
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _clear(response: Response, request: Request) -> None:
    """Delete AAS's session cookie and Streamlit's identity cookies (``st.login``'s, and their chunks)."""
    from streamlit.web.server.starlette.starlette_server_config import TOKENS_COOKIE_NAME, USER_COOKIE_NAME

    response.delete_cookie(SECURE_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    response.delete_cookie(PLAIN_COOKIE, path="/", httponly=True, samesite="strict")
    _clear_identity(response, request, (USER_COOKIE_NAME, TOKENS_COOKIE_NAME))


def _clear_identity(response: Response, request: Request, names: tuple[str, ...]) -> None:
    for name in request.cookies:
        base, _, chunk = name.rpartition("_")
        if name in names or (base in names and chunk.isdigit()):
            response.delete_cookie(name, path="/")


def _token(request: Request) -> str | None:
    return request.cookies.get(SECURE_COOKIE) or request.cookies.get(PLAIN_COOKIE)


async def start(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import PlainTextResponse, RedirectResponse
    from streamlit.web.server.starlette.starlette_server_config import TOKENS_COOKIE_NAME, USER_COOKIE_NAME

    from aas_core.services import in_transaction
    from aas_core.services.auth import SessionPolicy, redeem_ticket

    if not _same_origin(request):
        return _no_store(PlainTextResponse("Sign-in links work only from the AAS page itself.", status_code=403))
    settings = _settings()
    client = request.client.host if request.client else None
    token = await run_in_threadpool(in_transaction, settings.database_url, redeem_ticket,
                                    request.query_params.get("ticket", ""), client=client)
    response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    if token is not None:
        secure = cookie_secure(request)
        response.set_cookie(SECURE_COOKIE if secure else PLAIN_COOKIE, token, httponly=True, secure=secure,
                            samesite="strict", path="/",
                            max_age=int(SessionPolicy.from_settings(settings).absolute.total_seconds()))
        _clear_identity(response, request, (USER_COOKIE_NAME, TOKENS_COOKIE_NAME))
    return _no_store(response)


async def end(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import RedirectResponse

    from aas_core.services import in_transaction
    from aas_core.services.auth import end_session

    response = RedirectResponse("/", status_code=303)
    if _same_origin(request):
        token = _token(request)
        if token:
            await run_in_threadpool(in_transaction, _settings().database_url, end_session, token=token)
        _clear(response, request)
    return _no_store(response)


def session_routes() -> list[Route]:
    from starlette.routing import Route

    return [Route(START_PATH, start, methods=["GET"]), Route(END_PATH, end, methods=["GET"])]


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """``st.App`` lifespan: the routes above serve this process from now on (and the pages'
    modules are imported in the background, ``ui.warm``)."""
    global MOUNTED
    MOUNTED = True
    from aas_core.ui import warm

    warm.start()
    try:
        yield
    finally:
        MOUNTED = False
