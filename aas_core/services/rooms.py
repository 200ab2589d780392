"""Rooms and their cameras as data, the one camera resolver, and per-camera health.

An administrator manages rooms and cameras (dashboard **Rooms**, ``aas room ...``); a camera
row holds its kind, its host (a URL or host name *without* credentials) and non-secret
options. Its secrets (password, a URL with ``user:password@``, light request headers) stay in
the environment (``AAS_CAMERAS``) or ``.streamlit/secrets.toml`` under the camera's name.
:func:`camera_config` is the ONE place a camera name becomes a :class:`CameraConfig`: the
database row merged with those secrets, else a camera defined entirely in the environment
(the way cameras were configured before rooms existed). Every capture path asks it.

Health: :func:`record_health` keeps the last good grab and the last error (with its time) per
camera name; captures (scheduler, ``aas session capture``, Live Session) and the camera test
write it, never failing the capture when the write fails.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from aas_core.capture.cameras import SECRETS_FILE, camera_entries, get_camera_config
from aas_core.capture.factory import CameraConfig
from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import Camera, CameraHealth, Course, Role, Room, utcnow
from aas_core.redact import redact_text
from aas_core.services.auth import AccessDenied, AuthUser, require_role

log = logging.getLogger(__name__)

__all__ = ["CameraInfo", "CameraTest", "HealthView", "OPTION_KEYS", "RoomView", "SECRET_KEYS", "add_room",
           "camera_config", "camera_health", "known_cameras", "list_rooms", "record_health", "remove_camera",
           "remove_room", "room_camera_name", "room_names", "set_camera", "try_camera"]

#: Fields of a camera that are secrets (or may carry them): only ever from the environment / secrets file.
SECRET_KEYS = ("url", "username", "password", "rtsp_url", "light")
#: Fields a camera row may hold as options (everything else of ``CameraConfig`` but kind, name, host, secrets).
OPTION_KEYS = tuple(k for k in CameraConfig.model_fields if k not in {"kind", "name", "host", *SECRET_KEYS})
#: Kinds whose host is a URL (the others: ``dahua`` takes a host name, ``images`` file paths).
URL_KINDS = ("stream", "snapshot_url", "ipwebcam")


def _require_admin(user: AuthUser) -> None:
    if not user.is_admin:
        raise AccessDenied(f"{user.username} may not manage rooms and cameras (administrators only)")


@dataclass(frozen=True)
class HealthView:
    camera: str
    last_ok_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None

    @property
    def failing(self) -> bool:
        """The last thing that happened to the camera was an error."""
        return self.last_error_at is not None and (self.last_ok_at is None or self.last_error_at > self.last_ok_at)

    def as_json(self) -> dict[str, Any]:
        iso = (lambda t: t.isoformat() + "Z" if t else None)  # noqa: E731 - stored as naive UTC
        return {"camera": self.camera, "last_ok_at": iso(self.last_ok_at), "last_error": self.last_error,
                "last_error_at": iso(self.last_error_at), "failing": self.failing}


@dataclass(frozen=True)
class RoomView:
    """A room as the page and the CLI show it: no secrets, only which secret keys are set."""

    name: str
    description: str | None
    camera: str | None = None
    kind: str | None = None
    host: str | None = None
    options: dict[str, Any] | None = None
    secrets_set: tuple[str, ...] = ()  # names of the secret keys the environment holds for the camera
    health: HealthView | None = None

    def as_json(self) -> dict[str, Any]:
        return {"room": self.name, "description": self.description, "camera": self.camera, "kind": self.kind,
                "host": self.host, "options": self.options or {}, "secrets_set": list(self.secrets_set),
                "health": self.health.as_json() if self.health else None}


@dataclass(frozen=True)
class CameraInfo:
    """A camera a course may use: from the database (with its room) or the environment."""

    name: str
    kind: str | None
    where: str | None  # host/URL without credentials
    room: str | None
    source: str  # "database" | "environment"
    problem: str | None = None  # why it cannot be used as configured


# --- the resolver ---------------------------------------------------------------------------------

def _row_fields(cam: Camera) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": cam.kind, **(cam.options or {})}
    if cam.host:
        fields["url" if cam.kind in URL_KINDS else "host"] = cam.host
    return fields


def _messages(exc: ValidationError) -> str:
    # loc + msg only: pydantic's input values could be secrets
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'camera'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())


def camera_config(settings: Settings, url: str, name: str) -> CameraConfig:
    """The camera called ``name``, ready for ``make_camera``.

    A camera row (``aas room set-camera``) gives kind, host and options; the environment /
    secrets entry of the same name adds its secrets (a URL there, which may carry
    credentials, wins over the row's host). Without a row: the camera as defined in
    ``AAS_CAMERAS`` / ``[cameras.NAME]``. ``LookupError`` names what is missing, never a secret.
    """
    with session_scope(url) as s:
        row = s.scalar(select(Camera).where(Camera.name == name))
        fields = _row_fields(row) if row is not None else None
    if fields is None:
        return get_camera_config(settings, name)
    entry = camera_entries(settings).get(name) or {}
    secrets = {k: v for k, v in entry.items() if k in SECRET_KEYS} if isinstance(entry, dict) else {}
    try:
        return CameraConfig(name=name, **{**fields, **secrets})
    except ValidationError as exc:
        raise LookupError(f"camera {name!r} is incomplete: {_messages(exc)}; its secrets go in AAS_CAMERAS or "
                          f"[cameras.{name}] of {SECRETS_FILE}") from None


def known_cameras(settings: Settings, url: str) -> dict[str, CameraInfo]:
    """Every camera a course may name: the database's (with their rooms) and the environment's."""
    out: dict[str, CameraInfo] = {}
    try:
        entries = camera_entries(settings)
    except Exception as exc:  # noqa: BLE001 - an unreadable secrets file must not hide the database's cameras
        log.warning("reading the camera entries failed: %s", exc.__class__.__name__)
        entries = {}
    for name, raw in entries.items():
        if not isinstance(raw, dict) or "kind" not in raw:
            continue
        try:
            cfg = CameraConfig(name=name, **raw)
            out[name] = CameraInfo(name, cfg.kind, cfg.display_url, None, "environment")
        except ValidationError as exc:
            out[name] = CameraInfo(name, str(raw.get("kind")), None, None, "environment", _messages(exc))
    with session_scope(url) as s:
        rows = [(c.name, c.room.name) for c in s.scalars(select(Camera).order_by(Camera.name))]
    for name, room in rows:
        try:
            cfg = camera_config(settings, url, name)
            out[name] = CameraInfo(name, cfg.kind, cfg.display_url, room, "database")
        except LookupError as exc:
            out[name] = CameraInfo(name, None, None, room, "database", str(exc))
    return dict(sorted(out.items()))


# --- health ---------------------------------------------------------------------------------------

def record_health(url: str, camera: str, *, ok: bool, error: str | None = None, at: datetime | None = None) -> None:
    """Note a good grab (``ok``) or an error of ``camera``; never raises (a capture must not fail
    because its health note could not be written)."""
    at = at or utcnow()
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)  # stored naive UTC, like every time in the database
    text = redact_text(error or "")[:2000] or None

    def write() -> None:
        with session_scope(url) as s:
            row = s.get(CameraHealth, camera)
            if row is None:
                row = CameraHealth(camera=camera)
                s.add(row)
            if ok:
                row.last_ok_at = max(at, row.last_ok_at) if row.last_ok_at else at
            else:
                row.last_error, row.last_error_at = text or "unknown error", at

    try:
        try:
            write()
        except IntegrityError:  # another process inserted the row first: update it
            write()
    except Exception:  # noqa: BLE001 - see the docstring
        log.warning("could not record the health of camera %s", camera, exc_info=True)


def _health(s: Any, name: str) -> HealthView | None:
    row = s.get(CameraHealth, name)
    return HealthView(row.camera, row.last_ok_at, row.last_error, row.last_error_at) if row else None


def camera_health(url: str, user: AuthUser) -> list[HealthView]:
    """Every camera's health (administrators; the Operations view and ``aas room list``)."""
    _require_admin(user)
    with session_scope(url) as s:
        return [HealthView(r.camera, r.last_ok_at, r.last_error, r.last_error_at)
                for r in s.scalars(select(CameraHealth).order_by(CameraHealth.camera))]


# --- rooms ------------------------------------------------------------------------------------------

def room_names(url: str, user: AuthUser) -> list[str]:
    """Room names, for anyone who edits a timetable (instructors and administrators)."""
    require_role(user, Role.INSTRUCTOR)
    with session_scope(url) as s:
        return list(s.scalars(select(Room.name).order_by(Room.name)))


def list_rooms(url: str, user: AuthUser, settings: Settings) -> list[RoomView]:
    _require_admin(user)
    try:
        entries = camera_entries(settings)
    except Exception:  # noqa: BLE001 - shown as "no secrets set"; the resolver says what is wrong
        entries = {}
    with session_scope(url) as s:
        out = []
        for r in s.scalars(select(Room).order_by(Room.name)):
            c = r.camera
            if c is None:
                out.append(RoomView(r.name, r.description))
                continue
            entry = entries.get(c.name) if isinstance(entries.get(c.name), dict) else {}
            out.append(RoomView(r.name, r.description, c.name, c.kind, c.host, dict(c.options or {}),
                                tuple(k for k in SECRET_KEYS if k in (entry or {})), _health(s, c.name)))
        return out


def _room(s: Any, name: str) -> Room:
    room = s.scalar(select(Room).where(Room.name == name.strip()))
    if room is None:
        raise repo.NotFound(f"no room {name!r}; add it with `aas room add {name}` or on the Rooms page")
    return room


def add_room(url: str, user: AuthUser, name: str, description: str | None = None) -> RoomView:
    _require_admin(user)
    name = (name or "").strip()
    if not name:
        raise ValueError("a room needs a name")
    with session_scope(url) as s:
        if s.scalar(select(Room).where(Room.name == name)):
            raise repo.AlreadyExists(f"room {name!r} already exists")
        s.add(Room(name=name, description=(description or "").strip() or None))
        repo.audit(s, user.username, "room.add", "room", name)
    return RoomView(name, (description or "").strip() or None)


def rooms_in_use(s: Any, name: str) -> list[str]:
    """Codes of the courses whose timetable meets in room ``name``."""
    return sorted(c.code for c in s.scalars(select(Course).where(Course.timetable.is_not(None)))
                  if c.timetable is not None and name in c.timetable.rooms())


def remove_room(url: str, user: AuthUser, name: str) -> None:
    """Delete a room and its camera; refused while a timetable meets there."""
    _require_admin(user)
    with session_scope(url) as s:
        room = _room(s, name)
        used = rooms_in_use(s, room.name)
        if used:
            raise ValueError(f"room {room.name!r} is in the timetable of {', '.join(used)}; change those first")
        if room.camera is not None:
            s.execute(delete(CameraHealth).where(CameraHealth.camera == room.camera.name))
        s.delete(room)
        repo.audit(s, user.username, "room.remove", "room", room.name)


def _check_host(kind: str, host: str | None) -> str | None:
    host = (host or "").strip() or None
    if host is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(host if "//" in host else f"//{host}")
    # A host holding a password (user:pw@, ?pwd=..., a token) would put a secret in the database.
    if parts.password is not None or parts.username is not None or redact_text(host) != host:
        raise ValueError("the host must not hold credentials: give them under the camera's name in AAS_CAMERAS or "
                         f"{SECRETS_FILE} (url / username / password)")
    if kind in URL_KINDS and not parts.scheme:
        raise ValueError(f"a {kind} camera's host is a URL, e.g. http://10.0.0.5:8080 or rtsp://10.0.0.6/stream1")
    return host


def set_camera(url: str, user: AuthUser, room: str, *, kind: str, host: str | None = None, name: str | None = None,
               options: dict[str, Any] | None = None, settings: Settings | None = None) -> RoomView:
    """Give ``room`` its camera (or change it). ``options``: non-secret fields only (``OPTION_KEYS``).

    The kind and options are validated now; secrets may be added to the environment later
    (``camera_config`` then names what is still missing).
    """
    _require_admin(user)
    options = dict(options or {})
    bad = sorted(set(options) - set(OPTION_KEYS))
    if bad:
        secret = [k for k in bad if k in SECRET_KEYS]
        raise ValueError(f"unknown camera option(s) {', '.join(bad)}; options: {', '.join(OPTION_KEYS)}"
                         + (f" ({', '.join(secret)} are secrets: they go in AAS_CAMERAS or {SECRETS_FILE})"
                            if secret else ""))
    host = _check_host(kind, host)
    # Validate kind, host and option types against the real model; the secrets it may require
    # are not known here (they may be added to the environment later): stand-ins take their place.
    probe: dict[str, Any] = {"kind": kind, **options}
    if host:
        probe["url" if kind in URL_KINDS else "host"] = host
    if kind == "dahua":
        probe.update(username="stand-in", password="stand-in")
    elif kind in URL_KINDS and not host and "device" not in options:
        probe["url"] = "http://stand-in"  # the URL (with its credentials) is in the environment
    try:
        cfg = CameraConfig(**probe)
    except ValidationError as exc:
        raise ValueError(f"camera not saved: {_messages(exc)}") from None
    options = cfg.model_dump(mode="json", include=set(options))
    with session_scope(url) as s:
        r = _room(s, room)
        name = (name or "").strip() or (r.camera.name if r.camera else r.name)
        clash = s.scalar(select(Camera).where(Camera.name == name))
        if clash is not None and clash.room_id != r.id:
            raise repo.AlreadyExists(f"camera name {name!r} is used by room {clash.room.name!r}")
        cam = r.camera
        if cam is None:
            cam = Camera(name=name, room_id=r.id, kind=kind, host=host, options=options or None)
            s.add(cam)
        else:
            cam.name, cam.kind, cam.host, cam.options = name, kind, host, options or None
        repo.audit(s, user.username, "camera.set", "room", r.name, camera=name, kind=kind, host=host,
                   options=sorted(options))
        view = RoomView(r.name, r.description, name, kind, host, options)
    return view


def remove_camera(url: str, user: AuthUser, room: str) -> bool:
    _require_admin(user)
    with session_scope(url) as s:
        r = _room(s, room)
        if r.camera is None:
            return False
        name = r.camera.name
        s.delete(r.camera)
        s.execute(delete(CameraHealth).where(CameraHealth.camera == name))
        repo.audit(s, user.username, "camera.remove", "room", r.name, camera=name)
        return True


def room_camera_name(url: str, room: str) -> str | None:
    """The camera name of ``room`` (None when it has none); for the scheduler, no user."""
    with session_scope(url) as s:
        r = s.scalar(select(Room).where(Room.name == room))
        return r.camera.name if r is not None and r.camera is not None else None


# --- the camera test --------------------------------------------------------------------------------

@dataclass
class CameraTest:
    """What the test button shows: the frame (or why there is none) and what the light did."""

    camera: str
    image: np.ndarray | None
    grab_ms: float | None
    error: str | None
    light: str  # "on and off again" | "no light" | the light's error

    @property
    def ok(self) -> bool:
        return self.image is not None

    def as_json(self) -> dict[str, Any]:
        return {"camera": self.camera, "ok": self.ok, "grab_ms": self.grab_ms, "error": self.error,
                "light": self.light, "size": list(self.image.shape[1::-1]) if self.image is not None else None}


def try_camera(url: str, user: AuthUser, settings: Settings, room: str) -> CameraTest:
    """Grab one frame from ``room``'s camera with the light on, switch it off (always), and
    record the camera's health. Errors are redacted messages, never raised."""
    from aas_core.capture.base import CameraError, camera_has_light, capture_shot
    from aas_core.capture.factory import make_camera

    _require_admin(user)
    with session_scope(url) as s:
        r = _room(s, room)
        if r.camera is None:
            raise LookupError(f"room {r.name!r} has no camera; set one with `aas room set-camera {r.name} ...`")
        name = r.camera.name
        repo.audit(s, user.username, "camera.test", "room", r.name, camera=name)
    try:
        cfg = camera_config(settings, url, name)
    except (LookupError, ValueError) as exc:
        record_health(url, name, ok=False, error=str(exc))
        return CameraTest(name, None, None, redact_text(str(exc)), "not tried")
    camera = make_camera(cfg)
    t0 = time.perf_counter()
    try:
        has_light = camera_has_light(camera)
        shot = capture_shot(camera, settle_s=min(settings.light_settle_s, 2.0), attempts=1,
                            deadline_s=2 * cfg.timeout_s + 1)
    except CameraError as exc:
        record_health(url, name, ok=False, error=str(exc))
        # the light was switched off after the failed grab (capture_shot always does); if that
        # failed too it was logged: the grab's error is what the test reports
        return CameraTest(name, None, None, str(exc), "switched off after the failed grab" if has_light else "no light")
    except Exception as exc:  # noqa: BLE001 - a backend bug: a message, never a traceback on the page
        msg = redact_text(f"{exc.__class__.__name__}: {exc}")
        record_health(url, name, ok=False, error=msg)
        return CameraTest(name, None, None, msg, "unknown")
    finally:
        try:
            camera.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            log.debug("closing camera %s failed", name, exc_info=True)
    ms = (time.perf_counter() - t0) * 1000
    record_health(url, name, ok=True)
    if not has_light:
        light = "no light"
    elif shot.light_error:
        light = f"light problem: {shot.light_error}"
    else:
        light = "on and off again"
    if shot.light_error:
        record_health(url, name, ok=False, error=f"light: {shot.light_error}")
    return CameraTest(name, shot.image, round(ms, 1), None, light)
