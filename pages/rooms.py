"""Rooms: teaching rooms and their cameras (administrators), a camera test, and each camera's health."""

from __future__ import annotations

import json

import streamlit as st

from aas_core.capture.cameras import SECRETS_FILE
from aas_core.services import rooms as svc
from aas_core.ui.auth import require_user
from aas_core.ui.resources import database_url, settings
from aas_core.ui.text import plain
from aas_core.ui.widgets import flash, show_bgr, show_flashes

KINDS = ["ipwebcam", "snapshot_url", "stream", "dahua", "images"]

user = require_user()
show_flashes()
url = database_url()
cfg = settings()
st.title(":material/meeting_room: Rooms")
if not user.is_admin:  # the services check again; this only says so before any widget
    st.info("Rooms and their cameras are managed by administrators. Instructors pick a room for each meeting "
            "in a course's timetable (Courses → Timetable).")
    st.stop()
st.caption("The teaching rooms and the camera in each: add a room, set and test its camera, see whether it "
           "worked at its last use.")
st.caption("A room's camera is stored without its secrets (kind, host, options). Passwords, URLs holding "
           f"credentials and light headers stay in the environment (`AAS_CAMERAS`) or `{SECRETS_FILE}` under "
           "`[cameras.NAME]`, with NAME the camera's name.")

rooms = svc.list_rooms(url, user, cfg)


def _when(t) -> str:  # type: ignore[no-untyped-def]
    return f"{t:%Y-%m-%d %H:%M} UTC" if t else "—"


if rooms:
    st.dataframe([{"room": r.name, "description": r.description or "", "camera": r.camera or "—",
                   "kind": r.kind or "", "host": r.host or "", "secrets": ", ".join(r.secrets_set) or "—",
                   "ok": _when(r.health.last_ok_at) if r.health else "—",
                   "error": (f"{_when(r.health.last_error_at)}: {r.health.last_error}"
                             if r.health and r.health.last_error else "—"),
                   "state": ("failing" if r.health and r.health.failing else "ok" if r.health and r.health.last_ok_at
                             else "untested" if r.camera else "")}
                  for r in rooms], hide_index=True, width="stretch", column_config={
        "room": st.column_config.TextColumn("Room"), "description": st.column_config.TextColumn("Description"),
        "camera": st.column_config.TextColumn("Camera"), "kind": st.column_config.TextColumn("Kind"),
        "host": st.column_config.TextColumn("Host"),
        "secrets": st.column_config.TextColumn("Secrets set", help="Keys the environment holds for this camera"),
        "ok": st.column_config.TextColumn("Last good grab"), "error": st.column_config.TextColumn("Last error"),
        "state": st.column_config.TextColumn("Health")})
else:
    st.info("No rooms yet: add the first one below.")

with st.expander("New room", expanded=not rooms, icon=":material/add:"), st.form("new_room", clear_on_submit=True):
    c1, c2 = st.columns(2)
    new_name = c1.text_input("Name", placeholder="B-204")
    new_desc = c2.text_input("Description", placeholder="Building B, 120 seats")
    if st.form_submit_button("Add room", type="primary"):
        try:
            svc.add_room(url, user, new_name, new_desc)
        except ValueError as exc:
            st.error(plain(exc))
        else:
            flash(f"Room {plain(new_name.strip())} added")
            st.rerun()

if not rooms:
    st.stop()

st.divider()
names = [r.name for r in rooms]
picked = st.selectbox("Room", names, key="rooms_pick")
room = next(r for r in rooms if r.name == picked)

tab_camera, tab_test, tab_remove = st.tabs(["Camera", "Test", "Remove"])

with tab_camera, st.form("room_camera"):
    c1, c2, c3 = st.columns([1, 1, 2])
    kind = c1.selectbox("Kind", KINDS, index=KINDS.index(room.kind) if room.kind in KINDS else 0)
    cam_name = c2.text_input("Camera name", value=room.camera or room.name,
                             help="Its secrets go under this name in AAS_CAMERAS / the secrets file")
    host = c3.text_input("Host", value=room.host or "", placeholder="http://10.0.0.5:8080",
                         help="A URL (stream, snapshot URL, IP Webcam) or host name (Dahua), without credentials")
    options_text = st.text_area("Options (JSON, no secrets)", value=json.dumps(room.options or {}),
                                help=f"Allowed: {', '.join(svc.OPTION_KEYS)}")
    if room.camera:
        st.caption(f"Secrets the environment holds for {plain(room.camera)}: "
                   f"{plain(', '.join(room.secrets_set)) or 'none'}")
    if st.form_submit_button("Save camera", type="primary"):
        try:
            options = json.loads(options_text or "{}")
            if not isinstance(options, dict):
                raise ValueError("options must be a JSON object, e.g. {\"timeout_s\": 3}")
            svc.set_camera(url, user, room.name, kind=kind, host=host, name=cam_name, options=options)
        except json.JSONDecodeError as exc:
            st.error(f"Options are not JSON: {plain(exc)}")
        except ValueError as exc:
            st.error(f"Not saved: {plain(exc)}")
        else:
            flash(f"Camera of {plain(room.name)} saved", ":material/photo_camera:")
            st.rerun()

with tab_test:
    if not room.camera:
        st.info("This room has no camera yet.")
    elif st.button("Test the camera (grab one frame with the light on, then off)", key="room_test", type="primary"):
        with st.spinner("Grabbing…"):
            result = svc.try_camera(url, user, cfg, room.name)
        if result.ok:
            st.success(f"{plain(result.camera)}: frame in {result.grab_ms:.0f} ms; light: {plain(result.light)}")
            show_bgr(result.image, caption=f"{plain(result.camera)}")  # type: ignore[arg-type]
        else:
            st.error(f"{plain(result.error)} (light: {plain(result.light)})")

with tab_remove:
    c1, c2 = st.columns(2)
    if room.camera and c1.button("Remove the camera", key="room_remove_camera"):
        svc.remove_camera(url, user, room.name)
        flash(f"Camera of {plain(room.name)} removed", ":material/no_photography:")
        st.rerun()
    if c2.button(f"Delete room {plain(room.name)}", key="room_delete"):
        try:
            svc.remove_room(url, user, room.name)
        except ValueError as exc:
            st.error(plain(exc))
        else:
            flash(f"Room {plain(room.name)} deleted", ":material/delete:")
            st.rerun()
