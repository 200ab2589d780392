"""A light switched by HTTP requests (smart plug, relay board, Home Assistant...) + composition.

Many classrooms have a camera without a light and a separately switchable lamp. ``HttpLight``
describes "the request that switches it on / off" as data (so it can live in a camera
config), and ``WithLight`` bolts any light onto any camera.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .base import Camera, CameraError, LightController, camera_name, redact_url, url_password
from .httpio import SMALL_BODY_BYTES, request
from .stream import status_message

__all__ = ["RequestSpec", "HttpLight", "WithLight"]


class RequestSpec(BaseModel):
    """One HTTP request. The URL, header values and the password are secrets (tokens live there).

    The URL is a ``SecretStr`` because smart plugs and relay boards take their key in it
    (``http://plug/relay?apikey=...``, ``http://u:pw@board/``): a dump of the config must not
    show it; ``describe()`` shows it redacted, ``url_value`` is for sending only.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Literal["GET", "POST", "PUT", "PATCH"] = "POST"
    url: SecretStr
    json_body: dict[str, Any] | list[Any] | None = Field(default=None, alias="json")
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    username: str | None = None
    password: SecretStr | None = None
    auth: Literal["basic", "digest"] = "basic"
    timeout_s: float = Field(default=5.0, gt=0)
    verify_tls: bool = True

    @property
    def url_value(self) -> str:
        return self.url.get_secret_value()

    def describe(self) -> str:
        """``POST http://host/path`` with credentials redacted (for messages and the UI)."""
        return f"{self.method} {redact_url(self.url_value)}"

    def secret_values(self) -> list[str | None]:
        vals: list[str | None] = [v.get_secret_value() for v in self.headers.values()]
        vals.append(self.password.get_secret_value() if self.password else None)
        vals.append(url_password(self.url_value))
        return vals


class HttpLight:
    """Switches a light with the ``on`` / ``off`` request; any non-2xx answer is a ``CameraError``."""

    has_light = True

    def __init__(
        self, on: RequestSpec, off: RequestSpec, *, name: str = "http light", client: httpx.Client | None = None
    ) -> None:
        self.on_request = on
        self.off_request = off
        self.name = name
        self._client = client or httpx.Client()
        self._own_client = client is None

    def _send(self, spec: RequestSpec) -> None:
        auth: httpx.Auth | None = None
        if spec.username is not None:
            pw = spec.password.get_secret_value() if spec.password else ""
            auth = httpx.DigestAuth(spec.username, pw) if spec.auth == "digest" else httpx.BasicAuth(spec.username, pw)
        headers = {k: v.get_secret_value() for k, v in spec.headers.items()}
        label = f"{self.name} ({spec.describe()})"
        # timeout_s bounds the whole request, and a light's answer is small (httpio.request)
        response = request(self._client, spec.method, spec.url_value, name=label, timeout_s=spec.timeout_s,
                           max_bytes=SMALL_BODY_BYTES, secrets=spec.secret_values(), json=spec.json_body,
                           headers=headers, auth=auth)
        if not 200 <= response.status_code < 300:
            raise CameraError(status_message(label, response, "light request"))

    def light(self, on: bool) -> None:
        self._send(self.on_request if on else self.off_request)

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"HttpLight(on={self.on_request.describe()!r}, off={self.off_request.describe()!r})"


class WithLight:
    """``camera`` for images, ``light`` for the light: one ``Camera`` to the runner."""

    has_light = True

    def __init__(self, camera: Camera, light: LightController, *, name: str | None = None) -> None:
        self.camera = camera
        self.light_controller = light
        self.name = name or camera_name(camera)

    def grab(self) -> np.ndarray:
        return self.camera.grab()

    def light(self, on: bool) -> None:
        self.light_controller.light(on)

    def close(self) -> None:
        try:
            self.camera.close()
        finally:
            if self.light_controller is not self.camera:
                self.light_controller.close()

    def __repr__(self) -> str:
        return f"WithLight(camera={self.camera!r}, light={self.light_controller!r})"
