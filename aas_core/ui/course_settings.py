"""Per-course settings as stored in ``Course`` JSON columns (writes go through ``repo.update_course``).

* ``capture_plan``: ``{"snapshots", "first_after_s", "second_after_s", "session_length_s"}``
  (validated with ``capture.CapturePlan``);
* ``thresholds``: ``{"recognition": float, "model": embedder name or None, "source": str}``;
* ``rules``: ``attendance.RuleConfig`` dumped to JSON;
* ``camera``: a ``capture.CameraConfig`` **without secrets** (password, credentials in URLs).
  Secrets come from ``.streamlit/secrets.toml`` (``[cameras.<COURSE CODE>]`` with
  ``password``/``url``) or env ``AAS_CAMERA_<CODE>_PASSWORD`` when the camera is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aas_core.config import Settings

CAMERA_KINDS = ("snapshot_url", "ipwebcam", "dahua", "stream")
_SECRET_FIELDS = ("password", "rtsp_url", "light")


# --- capture plan ----------------------------------------------------------------------------

def plan_dict(snapshots: int, first_after_s: float, second_after_s: float, session_length_s: float) -> dict[str, Any]:
    """Validated capture plan; ``ValueError`` with the numbers when the times do not fit."""
    from aas_core.capture.plan import CapturePlan

    CapturePlan(n=int(snapshots), first_after_s=float(first_after_s), second_after_s=float(second_after_s),
                session_length_s=float(session_length_s))
    return {"snapshots": int(snapshots), "first_after_s": float(first_after_s),
            "second_after_s": float(second_after_s), "session_length_s": float(session_length_s)}


def effective_plan(course_plan: Mapping[str, Any] | None, settings: Settings) -> dict[str, Any]:
    """The course's plan, falling back to the settings' defaults for missing keys."""
    p = dict(course_plan or {})
    return {"snapshots": int(p.get("snapshots", settings.snapshots)),
            "first_after_s": float(p.get("first_after_s", settings.first_after_s)),
            "second_after_s": float(p.get("second_after_s", settings.second_after_s)),
            "session_length_s": float(p.get("session_length_s", settings.session_length_s))}


def capture_plan(course_plan: Mapping[str, Any] | None, settings: Settings):  # -> CapturePlan
    from aas_core.capture.plan import CapturePlan

    p = effective_plan(course_plan, settings)
    return CapturePlan(n=p["snapshots"], first_after_s=p["first_after_s"], second_after_s=p["second_after_s"],
                       session_length_s=p["session_length_s"])


# --- rules and thresholds ----------------------------------------------------------------------

def rules_dict(**values: Any) -> dict[str, Any]:
    """Validated attendance rules as JSON (``ValueError`` on bad values)."""
    from pydantic import ValidationError

    from aas_core.attendance import RuleConfig

    try:
        return RuleConfig.model_validate(values).model_dump(mode="json")
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None


def current_rules(stored: Mapping[str, Any] | None):  # -> RuleConfig
    from aas_core.attendance import RuleConfig

    try:
        return RuleConfig.model_validate(dict(stored or {}))
    except Exception:  # noqa: BLE001 - a broken stored value shows the defaults in the form
        return RuleConfig()


def thresholds_dict(recognition: float | None, model: str | None = None,
                    source: str = "course settings") -> dict[str, Any] | None:
    if recognition is None:
        return None
    r = float(recognition)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"recognition threshold must be a cosine similarity in [0, 1], got {r}")
    return {"recognition": round(r, 4), "model": model, "source": source}


# --- camera -----------------------------------------------------------------------------------

def _strip_userinfo_password(url: str) -> tuple[str, bool]:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, False
    userinfo, host = parts.netloc.rsplit("@", 1)
    if ":" not in userinfo:
        return url, False
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment)), True


def storable_camera(values: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """Camera settings safe to store in the database: no password, no credentials in URLs.

    Returns ``(dict or None when kind is empty, notes for the user)``. Raises ``ValueError``
    when the settings cannot describe a camera of that kind.
    """
    kind = (values.get("kind") or "").strip()
    if not kind or kind == "none":
        return None, []
    if kind not in CAMERA_KINDS:
        raise ValueError(f"unknown camera kind {kind!r}; choose one of {', '.join(CAMERA_KINDS)}")
    notes: list[str] = []
    out: dict[str, Any] = {"kind": kind}
    for key in ("name", "host", "username", "auth"):
        v = values.get(key)
        if isinstance(v, str):
            v = v.strip()
        if v:
            out[key] = v
    url = (values.get("url") or "").strip()
    if url:
        url, stripped = _strip_userinfo_password(url)
        if stripped:
            notes.append("the password in the URL was removed; put it in secrets (see below)")
        out["url"] = url
    device = values.get("device")
    if device not in (None, ""):
        out["device"] = int(device)
    for key, conv in (("channel", int), ("timeout_s", float)):
        if values.get(key) not in (None, ""):
            out[key] = conv(values[key])
    out["use_builtin_light"] = bool(values.get("use_builtin_light", True))
    if values.get("password"):
        notes.append("passwords are never stored in the database; put it in secrets (see below)")
    # Validate with a placeholder secret so a Dahua camera without a stored password passes.
    from aas_core.capture.factory import CameraConfig

    probe = dict(out)
    if kind == "dahua":
        probe["password"] = "placeholder"
    try:
        CameraConfig.model_validate(probe)
    except Exception as exc:  # pydantic ValidationError -> a readable message
        msg = getattr(exc, "errors", None)
        text = "; ".join(e.get("msg", str(e)) for e in msg()) if callable(msg) else str(exc)
        raise ValueError(text) from None
    return out, notes


def secret_key(course_code: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", course_code).upper()


def camera_config(stored: Mapping[str, Any], course_code: str,
                  secrets: Mapping[str, Any] | None = None):  # type: ignore[no-untyped-def]  # -> CameraConfig
    """The stored camera plus its secrets (secrets file section ``cameras.<CODE>``, else env)."""
    from aas_core.capture.factory import CameraConfig

    data = {k: v for k, v in dict(stored).items() if k not in _SECRET_FIELDS}
    section: Mapping[str, Any] = {}
    cams = (secrets or {}).get("cameras") if secrets is not None else None
    if cams is not None:
        section = cams.get(course_code) or cams.get(secret_key(course_code)) or {}
    pw = section.get("password") or os.environ.get(f"AAS_CAMERA_{secret_key(course_code)}_PASSWORD")
    if pw:
        data["password"] = pw
    if section.get("url"):
        data["url"] = section["url"]
    if section.get("rtsp_url"):
        data["rtsp_url"] = section["rtsp_url"]
    return CameraConfig.model_validate(data)
