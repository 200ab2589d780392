"""Dahua IP cameras: JSON-RPC login + white light via ``CoaxialControlIO``; image by RTSP or CGI.

Login (``POST /RPC2_Login``, the web UI's "Default" scheme)
    1. ``global.login`` with an empty password. The camera answers ``result: false``, error
       268632079 ("login challenge"), a temporary ``session`` and
       ``params {realm, random, encryption: "Default"}``.
    2. ``global.login`` again with that session and
       ``password = MD5_HEX_UPPER(user ":" random ":" MD5_HEX_UPPER(user ":" realm ":" pw))``,
       ``authorityType``/``passwordType`` ``"Default"``. ``result: true`` confirms the session.
    (Formula cross-checked against public Dahua client code, e.g. the "Gen2" hash in
    mcw0/Tools Dahua-JSON-Debug-Console.)
    The password itself never travels; only this hash does, which is why plain HTTP is
    tolerable for the light (the snapshot CGI uses HTTP digest auth for the same reason).

Light (``POST /RPC2``): ``CoaxialControlIO.control`` with ``info [{"Type": 1, "IO": 1}]``
    switches the white light on, ``IO: 2`` off. Sessions expire after ``keepAliveInterval``
    seconds without traffic (60 by default) -- snapshots are minutes apart, so before a call
    on an idle session we send ``global.keepAlive``, and on "invalid session"
    (287637504/287637505) we log in again and repeat the call once.

Image: from ``rtsp_url`` through ``StreamCamera`` when given (full stream quality), else
``GET /cgi-bin/snapshot.cgi?channel=N`` (N = channel + 1) with digest auth.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from typing import Any

import httpx
import numpy as np
from pydantic import SecretStr

from .base import DEFAULT_MAX_PIXELS, CameraError, decode_image, redact_url, scrub
from .httpio import DEFAULT_MAX_BODY_BYTES, SMALL_BODY_BYTES, request
from .stream import StreamCamera, status_message

log = logging.getLogger(__name__)

__all__ = ["DahuaCamera", "dahua_login_hash"]

LOGIN_CHALLENGE = 268632079
SESSION_ERRORS = frozenset({287637504, 287637505})
LOGIN_ERROR_HINTS = {
    268632085: "wrong username or password",
    268632081: "account locked after too many failed logins",
    268632073: "user already logged in elsewhere or not allowed",
}


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def dahua_login_hash(username: str, password: str, realm: str, random: str) -> str:
    """The "Default" second-step login password (see the module docstring)."""
    return _md5_upper(f"{username}:{random}:{_md5_upper(f'{username}:{realm}:{password}')}")


class DahuaCamera:
    """A Dahua camera (IPC) with a white light, e.g. the "Full-colour"/"Smart dual light" series.

    ``host`` is ``"192.168.1.108"``, ``"192.168.1.108:8080"`` or a full ``http(s)://`` base
    URL. The login happens lazily on the first light switch, so constructing the camera
    (e.g. in a settings page) does no network I/O.
    """

    def __init__(
        self,
        host: str,
        username: str,
        password: str | SecretStr,
        rtsp_url: str | SecretStr | None = None,
        *,
        timeout_s: float = 5.0,
        channel: int = 0,
        name: str | None = None,
        use_light: bool = True,
        verify_tls: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        base = host if "://" in host else f"http://{host}"
        self._base = base.rstrip("/")
        self.display_url = redact_url(self._base)
        self.name = name or f"Dahua {self.display_url}"
        self.username = username
        self._password = password.get_secret_value() if isinstance(password, SecretStr) else password
        self.timeout_s = float(timeout_s)
        self.channel = channel
        self.has_light = use_light
        self.max_pixels = max_pixels
        self._client = httpx.Client(base_url=self._base, timeout=self.timeout_s, verify=verify_tls)
        rtsp = rtsp_url.get_secret_value() if isinstance(rtsp_url, SecretStr) else rtsp_url
        self._stream = (StreamCamera(rtsp, timeout_s=max(self.timeout_s, 5.0), name=self.name, max_pixels=max_pixels)
                        if rtsp else None)
        self._session: Any = None
        self._keepalive_s = 60.0
        self._last_used = 0.0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # --- transport ------------------------------------------------------------------------
    def _secrets(self) -> list[str | None]:
        return [self._password]

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        # timeout_s bounds the whole request; an RPC answer is small (httpio.request)
        response = request(self._client, "POST", path, name=self.name, timeout_s=self.timeout_s,
                           max_bytes=SMALL_BODY_BYTES, secrets=self._secrets(), json=payload)
        if response.status_code != 200:
            raise CameraError(status_message(self.name, response, f"{path} request"))
        try:
            data = response.json()
        except ValueError:
            raise CameraError(f"{self.name}: {path} did not answer JSON (is this a Dahua camera?)") from None
        if not isinstance(data, dict):
            raise CameraError(f"{self.name}: unexpected {path} answer")
        return data

    @staticmethod
    def _error(data: dict[str, Any]) -> tuple[int | None, str]:
        err = data.get("error") or {}
        if not isinstance(err, dict):
            return None, str(err)
        code = err.get("code")
        return (int(code) if isinstance(code, (int, str)) and str(code).isdigit() else None), str(err.get("message", ""))

    # --- session ------------------------------------------------------------------------------
    def login(self) -> None:
        """Two-step "Default" login; ``CameraError`` (without the password) when refused."""
        with self._lock:
            self._session = None
            first = self._post(
                "/RPC2_Login",
                {
                    "method": "global.login",
                    "params": {"userName": self.username, "password": "", "clientType": "Web3.0"},
                    "id": next(self._ids),
                },
            )
            code, message = self._error(first)
            params = first.get("params") or {}
            if first.get("result") is True:  # no password needed (anonymous login enabled)
                self._start_session(first)
                return
            if code != LOGIN_CHALLENGE and not (isinstance(params, dict) and params.get("random")):
                raise CameraError(f"{self.name}: login failed at step 1 (error {code}: {message})")
            encryption = params.get("encryption", "Default")
            if encryption != "Default":
                raise CameraError(
                    f"{self.name}: camera asks for login encryption {encryption!r}; only 'Default' is supported"
                )
            realm, random = str(params.get("realm", "")), str(params.get("random", ""))
            second = self._post(
                "/RPC2_Login",
                {
                    "method": "global.login",
                    "params": {
                        "userName": self.username,
                        "password": dahua_login_hash(self.username, self._password, realm, random),
                        "clientType": "Web3.0",
                        "loginType": "Direct",
                        "authorityType": "Default",
                        "passwordType": "Default",
                    },
                    "session": first.get("session"),
                    "id": next(self._ids),
                },
            )
            if second.get("result") is not True:
                code, message = self._error(second)
                hint = LOGIN_ERROR_HINTS.get(code or 0, "login refused")
                raise CameraError(
                    scrub(f"{self.name}: login as {self.username!r} failed: {hint} (error {code}: {message})", self._secrets())
                )
            self._start_session(second, fallback=first.get("session"))
            log.info("%s: logged in as %r", self.name, self.username)

    def _start_session(self, reply: dict[str, Any], fallback: Any = None) -> None:
        self._session = reply.get("session") or fallback
        params = reply.get("params") or {}
        interval = params.get("keepAliveInterval") if isinstance(params, dict) else None
        self._keepalive_s = float(interval) if isinstance(interval, (int, float)) and interval > 0 else 60.0
        self._last_used = time.monotonic()

    def _send(self, method: str, params: Any) -> dict[str, Any]:
        data = self._post(
            "/RPC2", {"method": method, "params": params, "session": self._session, "id": next(self._ids)}
        )
        self._last_used = time.monotonic()
        return data

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        """One RPC with session handling: login if needed, keepalive if idle, relogin once."""
        with self._lock:
            if self._session is None:
                self.login()
            elif time.monotonic() - self._last_used > 0.8 * self._keepalive_s:
                alive = self._send("global.keepAlive", {"timeout": int(self._keepalive_s), "active": True})
                if alive.get("result") is not True:
                    log.info("%s: session expired, logging in again", self.name)
                    self.login()
            data = self._send(method, params)
            code, _ = self._error(data)
            if data.get("result") is not True and code in SESSION_ERRORS:
                log.info("%s: session rejected (%s), logging in again", self.name, code)
                self.login()
                data = self._send(method, params)
            if data.get("result") is not True:
                code, message = self._error(data)
                raise CameraError(f"{self.name}: {method} failed (error {code}: {message})")
            return data

    # --- camera API -----------------------------------------------------------------------------
    def light(self, on: bool) -> None:
        if not self.has_light:
            return
        self.call("CoaxialControlIO.control", {"channel": self.channel, "info": [{"Type": 1, "IO": 1 if on else 2}]})

    def grab(self) -> np.ndarray:
        if self._stream is not None:
            return self._stream.grab()
        response = request(self._client, "GET", "/cgi-bin/snapshot.cgi", name=self.name, timeout_s=self.timeout_s,
                           max_bytes=self.max_body_bytes, secrets=self._secrets(),
                           params={"channel": self.channel + 1}, auth=httpx.DigestAuth(self.username, self._password))
        if response.status_code != 200:
            raise CameraError(status_message(self.name, response, "snapshot.cgi"))
        return decode_image(response.content, self.name, self.max_pixels, self.max_body_bytes)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                try:
                    self._send("global.logout", None)
                except CameraError:
                    pass  # best effort: the session times out on its own
                self._session = None
            self._client.close()
            if self._stream is not None:
                self._stream.close()

    def __repr__(self) -> str:
        return f"DahuaCamera(host={self.display_url!r}, username={self.username!r}, rtsp={'yes' if self._stream else 'no'})"
