"""Android "IP Webcam" app: a phone as classroom camera, its torch as the light.

API used (all GET, optional HTTP basic auth when a login is set in the app):
``/shot.jpg`` -- a full-resolution still of the current frame;
``/enabletorch`` / ``/disabletorch`` -- switch the phone's flashlight.
A still per snapshot (not the ``/video`` stream) avoids stale buffered frames and keeps the
phone's bandwidth idle between snapshots.
"""

from __future__ import annotations

import httpx
import numpy as np
from pydantic import SecretStr

from .base import DEFAULT_MAX_PIXELS, CameraError, decode_image, redact_url, url_password
from .httpio import DEFAULT_MAX_BODY_BYTES, SMALL_BODY_BYTES, Answer, request
from .stream import status_message

__all__ = ["IPWebcamCamera"]


class IPWebcamCamera:
    """IP Webcam app at ``base_url`` (e.g. ``http://192.168.1.23:8080``)."""

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | SecretStr | None = None,
        timeout_s: float = 5.0,
        *,
        name: str | None = None,
        use_torch: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        verify_tls: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        if "://" not in base_url:
            base_url = f"http://{base_url}"
        self._base = base_url.rstrip("/")
        self.display_url = redact_url(self._base)
        self.name = name or f"IP Webcam {self.display_url}"
        self.timeout_s = float(timeout_s)
        self.has_light = use_torch
        pw = password.get_secret_value() if isinstance(password, SecretStr) else password
        self._password = pw
        auth = httpx.BasicAuth(username, pw or "") if username is not None else None
        self._client = httpx.Client(base_url=self._base, timeout=self.timeout_s, auth=auth, verify=verify_tls)
        self.max_pixels = max_pixels

    def _get(self, path: str, what: str, max_bytes: int = SMALL_BODY_BYTES) -> Answer:
        # timeout_s bounds the whole request and max_bytes its body (see httpio.request)
        response = request(self._client, "GET", path, name=self.name, timeout_s=self.timeout_s, max_bytes=max_bytes,
                           secrets=[self._password, url_password(self._base)])
        if response.status_code != 200:
            raise CameraError(status_message(self.name, response, what))
        return response

    def grab(self) -> np.ndarray:
        response = self._get("/shot.jpg", "still image (/shot.jpg)", self.max_body_bytes)
        return decode_image(response.content, self.name, self.max_pixels, self.max_body_bytes)

    def light(self, on: bool) -> None:
        if not self.has_light:
            return
        if on:
            self._get("/enabletorch", "switching the torch on")
        else:
            self._get("/disabletorch", "switching the torch off")

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"IPWebcamCamera(base_url={self.display_url!r}, timeout_s={self.timeout_s})"
