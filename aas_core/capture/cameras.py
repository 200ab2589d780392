"""Named camera configurations: ``AAS_CAMERAS`` (JSON) and ``.streamlit/secrets.toml``.

Credentials live only there (environment or the secrets file), never in the database or
code; the database stores a course's camera *name*, and for cameras defined in the database
(``aas room set-camera``) their kind, host and non-secret options. An entry without ``kind``
holds only the secrets of such a camera (``services.rooms.camera_config`` merges the two); it
is not a camera by itself and ``camera_configs`` leaves it out.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from aas_core.capture.factory import CameraConfig
from aas_core.config import Settings

SECRETS_FILE = Path(".streamlit/secrets.toml")


def camera_entries(settings: Settings, secrets_file: Path = SECRETS_FILE) -> dict[str, dict[str, Any]]:
    """Every named entry as written (with its secrets): the secrets file, then ``AAS_CAMERAS``."""
    raw: dict[str, dict[str, Any]] = {}
    if secrets_file.is_file():
        with secrets_file.open("rb") as fh:
            raw.update(tomllib.load(fh).get("cameras", {}))
    raw.update(settings.cameras)  # the environment wins over the file
    return raw


def camera_configs(settings: Settings, secrets_file: Path = SECRETS_FILE) -> dict[str, CameraConfig]:
    """The complete cameras of the environment / secrets file (entries with a ``kind``)."""
    out = {}
    for name, cfg in camera_entries(settings, secrets_file).items():
        if not isinstance(cfg, dict) or "kind" not in cfg:
            continue  # the secrets of a camera defined in the database
        try:
            out[name] = CameraConfig(**{"name": name, **cfg})
        except Exception as exc:  # a bad entry must not hide the others; its message has no secrets
            raise ValueError(f"camera {name!r} is misconfigured: {exc.__class__.__name__}") from None
    return out


def get_camera_config(settings: Settings, name: str) -> CameraConfig:
    cams = camera_configs(settings)
    if name not in cams:
        known = ", ".join(sorted(cams)) or "none configured"
        raise LookupError(f"no camera named {name!r} ({known}); set AAS_CAMERAS or [cameras.{name}] in "
                          f"{SECRETS_FILE}")
    return cams[name]
