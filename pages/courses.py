"""Courses: create and edit courses, manage rosters (incl. CSV import), capture plan, rules, camera."""

from __future__ import annotations

import streamlit as st
from sqlalchemy import select

from aas_core.attendance import Status
from aas_core.auth import AccessDenied, require_course, visible_courses
from aas_core.db import repo, session_scope
from aas_core.db.models import Course, Instructor, Role
from aas_core.ui import course_settings as cs
from aas_core.ui.auth import require_user
from aas_core.ui.resources import database_url, settings
from aas_core.ui.roster_csv import RosterFileError, apply_roster, parse_roster_csv
from aas_core.ui.widgets import flash, pick_course, show_flashes

user = require_user(Role.INSTRUCTOR)
show_flashes()
url = database_url()
cfg = settings()
st.title(":material/menu_book: Courses")

# --- list + create ---------------------------------------------------------------------------
with session_scope(url) as s:
    courses = visible_courses(s, user)
    rows = [{"code": c.code, "name": c.name, "schedule": c.schedule or "", "room": c.room or "",
             "instructor": c.instructor.name if c.instructor else "—", "students": len(c.enrollments),
             "camera": (c.camera or {}).get("kind", "—"),
             "threshold": str((c.thresholds or {}).get("recognition", "default"))} for c in courses]
    instructors = ({i.id: i.name for i in s.scalars(select(Instructor).order_by(Instructor.name))}
                   if user.is_admin else {})

st.subheader("Your courses" if not user.is_admin else "All courses")
if rows:
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "code": st.column_config.TextColumn("Code"), "name": st.column_config.TextColumn("Name", width="large"),
        "schedule": st.column_config.TextColumn("Schedule"), "room": st.column_config.TextColumn("Room"),
        "instructor": st.column_config.TextColumn("Instructor"),
        "students": st.column_config.NumberColumn("Students", width="small"),
        "camera": st.column_config.TextColumn("Camera", width="small"),
        "threshold": st.column_config.TextColumn("Threshold", width="small",
                                                 help="Recognition threshold; 'default' = the model's calibrated one")})
else:
    st.info("No courses yet: create the first one below.")
with st.expander("New course", expanded=not rows, icon=":material/add:"), st.form("new_course", clear_on_submit=True):
    code = st.text_input("Code", placeholder="CS101", key="new_code")
    name = st.text_input("Name", placeholder="Introduction to Computer Science", key="new_name")
    c1, c2 = st.columns(2)
    schedule = c1.text_input("Schedule", placeholder="Mon 09:00-10:30", key="new_schedule")
    room = c2.text_input("Room", placeholder="B-204", key="new_room")
    instructor_id = user.instructor_id
    if user.is_admin:
        options = [None, *instructors]
        instructor_id = st.selectbox("Instructor", options, key="new_instructor",
                                     format_func=lambda i: "— none —" if i is None else instructors[i])
    if st.form_submit_button("Create course", type="primary"):
        if not code.strip():
            st.error("A course needs a code.")
        else:
            try:
                with session_scope(url) as s:
                    repo.add_course(s, code, name or code, actor=user.username, instructor_id=instructor_id,
                                    schedule=schedule.strip() or None, room=room.strip() or None)
                st.session_state["aas_course"] = code.strip()
                flash(f"Course {code.strip()} created")
                st.rerun()
            except ValueError as exc:
                st.error(str(exc))


if not courses:
    st.stop()

st.divider()
course = pick_course(courses, key="courses_pick", label="Course to edit")
assert course is not None
course_id = course.id
try:
    require_course(user, course)
except AccessDenied as exc:
    st.error(str(exc))
    st.stop()

tab_details, tab_roster, tab_plan, tab_camera = st.tabs(["Details", "Roster", "Capture plan & rules", "Camera"])


def _load(s) -> Course:  # type: ignore[no-untyped-def]
    c = s.get(Course, course_id)
    require_course(user, c)
    return c


# The version this tab is editing: a save from another tab in between is refused, not overwritten.
VERSION_KEY = f"course_version_{course_id}"
if st.session_state.get(VERSION_KEY) is None:
    st.session_state[VERSION_KEY] = course.version


def _save(**changes) -> list[str] | None:  # type: ignore[no-untyped-def]
    try:
        with session_scope(url) as s:
            c = _load(s)
            changed = repo.update_course(s, c, actor=user.username, expected_version=st.session_state[VERSION_KEY],
                                         **changes)
            new_version = c.version
    except repo.StaleEdit as exc:
        st.session_state[VERSION_KEY] = None  # the next save applies to the current values
        st.error(str(exc))
        return None
    st.session_state[VERSION_KEY] = new_version
    return changed


# --- details ----------------------------------------------------------------------------------
with tab_details, st.form("course_details"):
    name = st.text_input("Name", value=course.name)
    c1, c2 = st.columns(2)
    schedule = c1.text_input("Schedule", value=course.schedule or "")
    room = c2.text_input("Room", value=course.room or "")
    changes: dict = {}
    if user.is_admin:
        options = [None, *instructors]
        changes["instructor_id"] = st.selectbox(
            "Instructor", options, index=options.index(course.instructor_id) if course.instructor_id in options else 0,
            format_func=lambda i: "— none —" if i is None else instructors[i])
    if st.form_submit_button("Save details"):
        changed = _save(name=name, schedule=schedule, room=room, **changes)
        if changed is not None:
            flash(f"Saved {', '.join(changed)}" if changed else "Nothing changed", ":material/save:")
            st.rerun()

# --- roster -----------------------------------------------------------------------------------
with tab_roster:
    with session_scope(url) as s:
        c = _load(s)
        counts = repo.sample_counts(s, c)
        roster_rows = [{"student_id": x.student_number, "name": x.name, "email": x.email or "",
                        "consent": x.has_consent, "samples": counts.get(x.student_number, 0)}
                       for x in repo.roster(s, c)]
        on_roster = {r["student_id"] for r in roster_rows}
        others = [(x.student_number, x.name) for x in repo.list_students(s) if x.student_number not in on_roster]
    st.markdown(f"**{len(roster_rows)} students on the roster of {course.code}**")
    if roster_rows:
        st.dataframe(roster_rows, hide_index=True, width="stretch", column_config={
            "consent": st.column_config.CheckboxColumn("Consent"),
            "samples": st.column_config.NumberColumn("Face samples", help="Accepted enrollment photos")})
        missing = [r["student_id"] for r in roster_rows if not r["consent"] or r["samples"] == 0]
        if missing:
            st.warning(f"{len(missing)} student(s) cannot be recognised yet (no consent or no face samples): "
                       f"{', '.join(missing[:10])}{'…' if len(missing) > 10 else ''}. Enroll them on **Students**.")
    a, b = st.columns(2)
    with a, st.form("roster_add", clear_on_submit=True):
        st.markdown("**Add existing students**")
        names = dict(others)
        picked = st.multiselect("Students", list(names), format_func=lambda sn, _n=names: f"{sn} — {_n[sn]}",
                                placeholder="Choose students" if names else "Every student is on this roster")
        if st.form_submit_button("Add to roster") and picked:
            with session_scope(url) as s:
                c = _load(s)
                added = sum(repo.enroll_in_course(s, c, repo.get_student(s, sn), actor=user.username) for sn in picked)
            flash(f"{added} student(s) added to {course.code}")
            st.rerun()
    with b, st.form("roster_remove", clear_on_submit=True):
        st.markdown("**Remove from roster**")
        rnames = {r["student_id"]: r["name"] for r in roster_rows}
        drop = st.multiselect("Students", list(rnames), format_func=lambda sn, _n=rnames: f"{sn} — {_n[sn]}",
                              key="roster_drop")
        st.caption("Their attendance history stays; they are no longer expected in new sessions.")
        if st.form_submit_button("Remove") and drop:
            with session_scope(url) as s:
                c = _load(s)
                n = sum(repo.remove_from_roster(s, c, repo.get_student(s, sn), user.username) for sn in drop)
            flash(f"{n} student(s) removed from {course.code}", ":material/person_remove:")
            st.rerun()

    st.markdown("**Import a roster CSV** — columns `student_id,name[,email]` (comma or semicolon separated)")
    up = st.file_uploader("Roster CSV", type=["csv", "txt"], key="roster_csv")
    if up is not None:
        try:
            parsed = parse_roster_csv(up.getvalue())
        except RosterFileError as exc:
            st.error(f"{up.name}: {exc}")
        else:
            if parsed.errors:
                st.error(f"{len(parsed.errors)} row(s) cannot be imported:\n\n" +
                         "\n".join(f"- {e}" for e in parsed.errors[:50]))
            if parsed.rows:
                st.dataframe([{"line": r.line, "student_id": r.student_id, "name": r.name, "email": r.email or ""}
                              for r in parsed.rows], hide_index=True, width="stretch", height=200)
                st.caption("Imported students have no recorded consent yet: record it on **Students** "
                           "before enrolling photos.")
                if st.button(f"Import {len(parsed.rows)} valid row(s) into {course.code}", type="primary",
                             key="roster_import"):
                    with session_scope(url) as s:
                        res = apply_roster(s, _load(s), parsed.rows, actor=user.username)
                    for w in res.warnings:
                        st.warning(w)
                    flash(f"Roster import: {len(res.created)} new students, {len(res.added)} added to the roster, "
                          f"{len(res.already)} already there")
                    st.rerun()

# --- capture plan, threshold, rules ----------------------------------------------------------------
with tab_plan:
    plan = cs.effective_plan(course.capture_plan, cfg)
    rules = cs.current_rules(course.rules)
    thr = (course.thresholds or {}).get("recognition")
    with st.form("course_plan"):
        st.markdown("**Capture plan** — first snapshot at *t1*, the next *t2* later, the last at a random "
                    "moment before the end.")
        c1, c2, c3, c4 = st.columns(4)
        n = c1.number_input("Snapshots", 1, 10, int(plan["snapshots"]))
        t1 = c2.number_input("t1 (min)", 0.0, 600.0, plan["first_after_s"] / 60, step=1.0)
        t2 = c3.number_input("t2 (min)", 0.0, 600.0, plan["second_after_s"] / 60, step=1.0)
        length = c4.number_input("Session length (min)", 1.0, 900.0, plan["session_length_s"] / 60, step=5.0)
        st.markdown("**Recognition threshold** (cosine similarity; higher = fewer false matches, more misses)")
        use_default = st.checkbox("Use the model's calibrated default", value=thr is None)
        thr_value = st.slider("Threshold", 0.0, 1.0, float(thr) if thr is not None else 0.4, 0.01)
        if course.thresholds and course.thresholds.get("source"):
            st.caption(f"Set from: {course.thresholds['source']} (model {course.thresholds.get('model') or 'any'})")
        st.markdown("**Status rules**")
        r1, r2, r3 = st.columns(3)
        gaps = r1.number_input("Tolerated missed snapshots in between", 0, 9, rules.tolerate_gaps)
        statuses = [x.value for x in Status]
        middle = r2.selectbox("Seen only in between (late + left early)", statuses,
                              index=statuses.index(rules.middle_only.value))
        interrupted = r3.selectbox("Left and came back", statuses, index=statuses.index(rules.interrupted.value))
        r4, r5 = st.columns(2)
        min_frac = r4.slider("Absent if seen in fewer than this share of snapshots", 0.0, 1.0,
                             float(rules.min_present_fraction), 0.05)
        min_conf = r5.slider("Ignore sightings below this similarity (no evidence)", 0.0, 1.0,
                             float(rules.min_confidence), 0.01)
        if st.form_submit_button("Save plan and rules", type="primary"):
            try:
                new_plan = cs.plan_dict(n, t1 * 60, t2 * 60, length * 60)
                new_rules = cs.rules_dict(tolerate_gaps=int(gaps), middle_only=middle, interrupted=interrupted,
                                          min_present_fraction=min_frac, min_confidence=min_conf)
                if use_default:
                    new_thr = None
                elif thr is not None and abs(thr_value - float(thr)) < 1e-9:
                    new_thr = course.thresholds  # unchanged: keep where it came from
                else:
                    new_thr = cs.thresholds_dict(thr_value, None, f"set by {user.username}")
            except ValueError as exc:
                st.error(str(exc))
            else:
                changed = _save(capture_plan=new_plan, rules=new_rules, thresholds=new_thr)
                if changed is not None:
                    flash(f"Saved {', '.join(changed)}" if changed else "Nothing changed", ":material/save:")
                    st.rerun()

# --- camera ------------------------------------------------------------------------------------------
with tab_camera:
    cam = dict(course.camera or {})
    key = cs.secret_key(course.code)
    st.markdown("The classroom camera used by **Live Session**. Passwords are never stored in the database: put "
                f"them in `.streamlit/secrets.toml` under `[cameras.{key}]` (`password = \"…\"`, or a full "
                f"`url` with credentials) or in the environment variable `AAS_CAMERA_{key}_PASSWORD`.")
    with st.form("course_camera"):
        kinds = ["none", *cs.CAMERA_KINDS]
        kind = st.selectbox("Kind", kinds, index=kinds.index(cam["kind"]) if cam.get("kind") in kinds else 0,
                            help="snapshot_url: a still-image URL · ipwebcam: Android IP Webcam app · "
                                 "dahua: Dahua IP camera · stream: RTSP/MJPEG URL or local device")
        c1, c2 = st.columns(2)
        cam_name = c1.text_input("Name", value=cam.get("name", "") or course.room or "")
        cam_url = c2.text_input("URL (no password)", value=cam.get("url", ""),
                                placeholder="http://192.168.1.20:8080")
        c3, c4, c5 = st.columns(3)
        host = c3.text_input("Host (Dahua)", value=cam.get("host", ""))
        username = c4.text_input("Username", value=cam.get("username", ""))
        channel = c5.number_input("Channel", 0, 64, int(cam.get("channel", 0)))
        c6, c7, c8 = st.columns(3)
        device = c6.text_input("Local device index (stream)", value=str(cam.get("device", "")))
        timeout = c7.number_input("Timeout (s)", 1.0, 120.0, float(cam.get("timeout_s", 5.0)))
        light = c8.checkbox("Use the camera's light", value=bool(cam.get("use_builtin_light", True)))
        if st.form_submit_button("Save camera"):
            try:
                stored, notes = cs.storable_camera({"kind": kind, "name": cam_name, "url": cam_url, "host": host,
                                                    "username": username, "channel": channel, "timeout_s": timeout,
                                                    "device": device.strip() or None, "use_builtin_light": light})
            except ValueError as exc:
                st.error(f"Camera not saved: {exc}")
            else:
                if _save(camera=stored) is not None:
                    for note in notes:
                        flash(note, ":material/lock:")
                    flash("Camera saved" if stored else "Camera removed", ":material/photo_camera:")
                    st.rerun()
