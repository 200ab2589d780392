"""Every HTTP request a camera backend makes: a TOTAL deadline and a body-size cap.

Why not ``client.get(url).content``: httpx's timeouts are per network operation, so a
camera that sends one byte every two seconds never trips a 5 s read timeout and keeps a
grab (and the capture thread, and the session) waiting forever; and ``.content`` reads a
body of any size into memory before anything can look at it. Here the body is streamed,
``Content-Length`` is checked before reading, the size is checked after every chunk, and a
monotonic deadline ends the request once ``timeout_s`` has passed in total. A single read can
still block for up to the per-read timeout, so the worst case is about ``2 * timeout_s``;
``base.grab_within`` bounds a whole grab hard on top of this (a camera that trickles its
*headers* is only stopped there).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from .base import CameraError, scrub

__all__ = ["DEFAULT_MAX_BODY_BYTES", "SMALL_BODY_BYTES", "Answer", "request"]

#: Largest image body a camera may send (a 4K JPEG is 1-5 MB; a PNG of 50 MP is under 32 MB
#: only when it compresses). ``CameraConfig.max_body_bytes`` overrides it per camera.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: Light switches and Dahua RPC answers are a few hundred bytes of text or JSON.
SMALL_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """A fully read, size-checked response (what the backends used from ``httpx.Response``)."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def _timeout_message(name: str, exc: Exception, timeout_s: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"{name}: connection timed out after {timeout_s:.1f} s (host unreachable?)"
    if isinstance(exc, httpx.TimeoutException):
        return f"{name}: no answer within {timeout_s:.1f} s"
    if isinstance(exc, httpx.ConnectError):
        return f"{name}: cannot connect ({exc})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{name}: connection dropped mid-response ({exc})"
    return f"{name}: {type(exc).__name__}: {exc}"


def http_error_message(name: str, exc: Exception, timeout_s: float, secrets: list[str | None]) -> str:
    """Plain-language message for an httpx failure, without URLs or credentials."""
    return scrub(_timeout_message(name, exc, timeout_s), secrets)


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    name: str,
    timeout_s: float,
    max_bytes: int,
    secrets: list[str | None],
    read_error_body: bool = False,
    **kwargs: Any,
) -> Answer:
    """One request, read within ``timeout_s`` in total and at most ``max_bytes`` of body.

    Raises ``CameraError`` (redacted, scrubbed of ``secrets``) on any transport failure, a
    body over the limit (refused from ``Content-Length`` before reading when the camera
    announces it, else as soon as the bytes read pass it) or the total deadline. The body of
    a non-2xx answer is not read unless ``read_error_body`` (JSON-RPC errors are in it).
    """
    deadline = time.monotonic() + timeout_s
    try:
        with client.stream(method, url, timeout=timeout_s, **kwargs) as response:
            content = b""
            if 200 <= response.status_code < 300 or read_error_body:
                content = _read_body(response, name=name, timeout_s=timeout_s, deadline=deadline, max_bytes=max_bytes)
            return Answer(response.status_code, response.reason_phrase, response.headers, content)
    except httpx.HTTPError as exc:
        raise CameraError(http_error_message(name, exc, timeout_s, secrets)) from None
    except CameraError as exc:
        raise CameraError(scrub(str(exc), secrets)) from None


def _read_body(response: httpx.Response, *, name: str, timeout_s: float, deadline: float, max_bytes: int) -> bytes:
    announced = response.headers.get("content-length")
    if announced is not None:
        try:
            length = int(announced)
        except ValueError:
            length = -1  # unparsable: h11 refuses it anyway; the running count below still applies
        if length > max_bytes:
            raise CameraError(f"{name}: answer of {length} bytes is larger than the limit of {max_bytes} bytes "
                              "(not a camera image?); not read")
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise CameraError(f"{name}: answer larger than the limit of {max_bytes} bytes (not a camera image?); "
                              "stopped reading")
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise CameraError(f"{name}: answer not complete within {timeout_s:.1f} s ({total} bytes received; "
                              "camera sending too slowly)")
    return b"".join(chunks)
