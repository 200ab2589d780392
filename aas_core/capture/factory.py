"""Camera configuration (what an admin enters per classroom) and ``make_camera``.

Secrets: passwords, URLs (RTSP/HTTP URLs often embed ``user:password@``) and light-request
headers are ``SecretStr``, so printing a config, logging it, or showing
``model_dump(mode="json")`` in the UI reveals nothing; ``repr`` shows URLs with the password
replaced by ``***``. To *store* a config (database / secrets file) use
``to_storage_dict()``, which is the only place secrets come out in clear text.
The Dahua ``host`` stays a plain string: a host name is not a secret and is needed in
messages to tell cameras apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from .base import Camera, redact_url
from .dahua import DahuaCamera
from .http_light import HttpLight, RequestSpec, WithLight
from .httpio import DEFAULT_MAX_BODY_BYTES
from .images import ImageSequenceCamera
from .ipwebcam import IPWebcamCamera
from .stream import SnapshotURLCamera, StreamCamera

__all__ = ["CameraConfig", "CameraKind", "LightConfig", "make_camera"]

CameraKind = Literal["stream", "snapshot_url", "ipwebcam", "dahua", "images"]


class LightConfig(BaseModel):
    """An external light switched by two HTTP requests (see ``HttpLight``)."""

    model_config = ConfigDict(extra="forbid")

    on: RequestSpec
    off: RequestSpec


class CameraConfig(BaseModel):
    """One classroom camera. Which fields are needed depends on ``kind``:

    * ``stream``: ``url`` (RTSP/HTTP MJPEG/video file) or ``device`` (local camera index)
    * ``snapshot_url``: ``url`` of a still image; optional ``username``/``password``/``auth``
    * ``ipwebcam``: ``url`` = base URL of the IP Webcam app; optional ``username``/``password``
    * ``dahua``: ``host``, ``username``, ``password``; optional ``rtsp_url``, ``channel``
    * ``images``: ``paths`` of image files (uploads, demos)

    ``use_builtin_light`` switches the IP Webcam torch / Dahua light; ``light`` adds an
    external HTTP-switched light instead (it takes precedence over the built-in one).
    """

    model_config = ConfigDict(extra="forbid")

    kind: CameraKind
    name: str | None = None
    url: SecretStr | None = None
    device: int | None = Field(default=None, ge=0)
    host: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    rtsp_url: SecretStr | None = None
    auth: Literal["basic", "digest"] = "basic"
    channel: int = Field(default=0, ge=0)
    paths: list[str] = Field(default_factory=list)
    #: Bounds one whole HTTP request of the camera (not each read: see ``httpio.request``).
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    #: Largest image body accepted from the camera; a bigger answer is refused unread.
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=512 * 1024 * 1024)
    use_builtin_light: bool = True
    light: LightConfig | None = None
    verify_tls: bool = True

    @model_validator(mode="after")
    def _required_fields(self) -> CameraConfig:
        missing: list[str] = []
        if self.kind == "stream":
            if (self.url is None) == (self.device is None):
                raise ValueError("kind 'stream' needs exactly one of 'url' or 'device'")
        elif self.kind in ("snapshot_url", "ipwebcam"):
            if self.url is None or not self.url.get_secret_value():
                missing.append("url")
        elif self.kind == "dahua":
            missing += [f for f in ("host", "username", "password") if not getattr(self, f)]
        elif self.kind == "images" and not self.paths:
            missing.append("paths")
        if missing:
            raise ValueError(f"kind {self.kind!r} needs: {', '.join(missing)}")
        return self

    @property
    def display_url(self) -> str | None:
        """The URL / host / device to show in the UI, password replaced by ``***``."""
        if self.url is not None:
            return redact_url(self.url.get_secret_value())
        if self.host is not None:
            return redact_url(self.host)
        if self.device is not None:
            return f"device {self.device}"
        return None

    def to_storage_dict(self) -> dict[str, Any]:
        """JSON-able dict WITH clear-text secrets, for storing the config; never log it."""

        def reveal(v: Any) -> Any:
            if isinstance(v, SecretStr):
                return v.get_secret_value()
            if isinstance(v, dict):
                return {k: reveal(x) for k, x in v.items()}
            if isinstance(v, list):
                return [reveal(x) for x in v]
            return v

        return reveal(self.model_dump(mode="python", by_alias=True))

    def __repr__(self) -> str:
        parts = [f"kind={self.kind!r}"]
        if self.name:
            parts.append(f"name={self.name!r}")
        if self.display_url:
            parts.append(f"at={self.display_url!r}")
        if self.username:
            parts.append(f"username={self.username!r}")
        if self.password is not None:
            parts.append("password='***'")
        if self.rtsp_url is not None:
            parts.append(f"rtsp_url={redact_url(self.rtsp_url.get_secret_value())!r}")
        if self.light is not None:
            parts.append(f"light={self.light.on.describe()!r}")
        return f"CameraConfig({', '.join(parts)})"

    __str__ = __repr__


def make_camera(config: CameraConfig) -> Camera:
    """Build the camera a config describes (no network I/O happens here)."""
    pw = config.password.get_secret_value() if config.password else None
    url = config.url.get_secret_value() if config.url else None
    camera: Camera
    if config.kind == "stream":
        source: str | int = url if url is not None else int(config.device or 0)
        camera = StreamCamera(source, timeout_s=config.timeout_s, name=config.name)
    elif config.kind == "snapshot_url":
        assert url is not None
        camera = SnapshotURLCamera(
            url,
            timeout_s=config.timeout_s,
            name=config.name,
            username=config.username,
            password=pw,
            auth=config.auth,
            verify_tls=config.verify_tls,
            max_body_bytes=config.max_body_bytes,
        )
    elif config.kind == "ipwebcam":
        assert url is not None
        camera = IPWebcamCamera(
            url,
            username=config.username,
            password=pw,
            timeout_s=config.timeout_s,
            name=config.name,
            use_torch=config.use_builtin_light and config.light is None,
            verify_tls=config.verify_tls,
            max_body_bytes=config.max_body_bytes,
        )
    elif config.kind == "dahua":
        assert config.host and config.username and pw is not None
        camera = DahuaCamera(
            config.host,
            config.username,
            pw,
            config.rtsp_url,
            timeout_s=config.timeout_s,
            channel=config.channel,
            name=config.name,
            use_light=config.use_builtin_light and config.light is None,
            verify_tls=config.verify_tls,
            max_body_bytes=config.max_body_bytes,
        )
    elif config.kind == "images":
        camera = ImageSequenceCamera(config.paths, name=config.name or "images")
    else:  # pragma: no cover - Literal makes this unreachable
        raise ValueError(f"unknown camera kind {config.kind!r}")
    if config.light is not None:
        camera = WithLight(camera, HttpLight(config.light.on, config.light.off))
    return camera
