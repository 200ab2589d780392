"""Named camera configurations: ``AAS_CAMERAS`` (JSON) and ``.streamlit/secrets.toml``.

Credentials live only there (environment or the secrets file), never in the database or
code; the database stores a course's camera *name*.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from aas_core.capture.factory import CameraConfig
from aas_core.config import Settings

SECRETS_FILE = Path(".streamlit/secrets.toml")


def camera_configs(settings: Settings, secrets_file: Path = SECRETS_FILE) -> dict[str, CameraConfig]:
    raw: dict[str, dict[str, Any]] = {}
    if secrets_file.is_file():
        with secrets_file.open("rb") as fh:
            raw.update(tomllib.load(fh).get("cameras", {}))
    raw.update(settings.cameras)  # the environment wins over the file
    out = {}
    for name, cfg in raw.items():
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
