"""Courses: create and edit courses, manage rosters (incl. CSV import), capture plan, rules, camera, timetable."""

from __future__ import annotations

import streamlit as st

from aas_core.db.models import Role
from aas_core.domain.attendance import Status
from aas_core.domain.course_config import ConfigError, RecognitionConfig
from aas_core.services import courses as svc
from aas_core.services.auth import AccessDenied
from aas_core.services.roster import RosterFileError, parse_roster_csv
from aas_core.ui.auth import require_user
from aas_core.services.review import status_label
from aas_core.ui.resources import base_config, database_url, settings
from aas_core.ui.text import plain, plain_lines
from aas_core.ui.widgets import flash, pick_course, show_flashes

user = require_user(Role.INSTRUCTOR)
show_flashes()
url = database_url()
cfg = settings()
st.title(":material/menu_book: Courses")
st.caption("Your courses: details, roster, when the snapshots are taken and the attendance rules, the camera, "
           "the timetable and notices.")

# --- list + create ---------------------------------------------------------------------------
all_courses = svc.list_courses(url, user)
archived = [c for c in all_courses if c.archived]
show_archived = bool(archived) and st.toggle(f"Show archived courses ({len(archived)})", key="courses_show_archived")
courses = [c for c in all_courses if show_archived or not c.archived]
rows = [{"code": c.code + (" (archived)" if c.archived else ""), "name": c.name, "schedule": c.schedule or "",
         "room": c.room or "", "instructor": c.instructor or "—", "students": c.students,
         "camera": c.config.camera or "—",
         "threshold": (f"{c.config.recognition.threshold:.2f}" if c.config.recognition.threshold is not None
                       else "model's default")}
        for c in courses]
instructors = svc.instructors(url, user)

st.subheader("Your courses" if not user.is_admin else "All courses")
if rows:
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "code": st.column_config.TextColumn("Code"), "name": st.column_config.TextColumn("Name"),
        "schedule": st.column_config.TextColumn("Schedule"), "room": st.column_config.TextColumn("Room"),
        "instructor": st.column_config.TextColumn("Instructor"),
        "students": st.column_config.NumberColumn("Students", width="small"),
        "camera": st.column_config.TextColumn("Camera", width="small"),
        "threshold": st.column_config.TextColumn("Threshold", width="small",
                                                 help="Recognition threshold; 'default' = the model's calibrated one")})
else:
    st.info("No courses yet: create your first course with the form below (a code such as CS101 and a name), "
            "then add its students on the **Roster** tab.")
# Not clear_on_submit: a refused course (a duplicate code) keeps what was typed. After a course is
# created the form starts empty through new widget keys (a generation number).
new_gen = st.session_state.setdefault("new_course_gen", 0)
with st.expander("New course", expanded=not all_courses, icon=":material/add:"), st.form("new_course"):
    code = st.text_input("Code", placeholder="CS101", key=f"new_code_{new_gen}")
    name = st.text_input("Name", placeholder="Introduction to Computer Science", key=f"new_name_{new_gen}")
    c1, c2 = st.columns(2)
    schedule = c1.text_input("Schedule", placeholder="Mon 09:00-10:30", key=f"new_schedule_{new_gen}")
    room = c2.text_input("Room", placeholder="B-204", key=f"new_room_{new_gen}")
    instructor_id = user.instructor_id
    if user.is_admin:
        options = [None, *instructors]
        instructor_id = st.selectbox("Instructor", options, key=f"new_instructor_{new_gen}",
                                     format_func=lambda i: "— none —" if i is None else instructors[i])
    if st.form_submit_button("Create course", type="primary"):
        if not code.strip():
            st.error("A course needs a code.")
        else:
            try:
                svc.create_course(url, user, cfg, code, name or code, schedule=schedule, room=room,
                                  instructor_id=instructor_id)
            except ValueError as exc:
                st.error(f"{plain(exc)} — nothing was created; change the code and try again.")
            else:
                st.session_state["aas_course"] = code.strip()
                st.session_state["new_course_gen"] = new_gen + 1
                flash(f"Course {plain(code.strip())} created")
                st.rerun()


if not all_courses:
    st.stop()

st.divider()
picked = pick_course(all_courses, key="courses_pick", label="Course to edit")
assert picked is not None
try:
    course = svc.get_course(url, user, picked.code)
except AccessDenied as exc:
    st.error(plain(exc))
    st.stop()

tab_details, tab_roster, tab_plan, tab_camera, tab_timetable, tab_reach = st.tabs(
    ["Details", "Roster", "Capture plan & rules", "Camera", "Timetable", "Notices & Moodle"])

# The version this tab is editing: a save from another tab in between is refused, not overwritten.
VERSION_KEY = f"course_version_{course.id}"
if st.session_state.get(VERSION_KEY) is None:
    st.session_state[VERSION_KEY] = course.version


def _saved(save) -> list[str] | None:  # type: ignore[no-untyped-def]
    """Run one save with this tab's version; remember the new version, or show why it was refused."""
    try:
        changed, new_version = save(st.session_state[VERSION_KEY])
    except svc.StaleEdit as exc:
        st.session_state[VERSION_KEY] = None  # the next save applies to the current values
        st.error(plain(exc))
        return None
    except ConfigError as exc:
        st.error(f"Not saved: {plain(svc.readable_config_error(exc))}")
        return None
    st.session_state[VERSION_KEY] = new_version
    return changed


def _save_config(config) -> list[str] | None:  # type: ignore[no-untyped-def]
    def save(version):  # type: ignore[no-untyped-def]
        _, changed, new_version = svc.update_config(url, user, course.code, config=config, expected_version=version)
        return changed, new_version
    return _saved(save)


@st.dialog("Archive the course?")
def _archive_dialog(code: str) -> None:
    st.write(f"**{plain(code)}** keeps every session, attendance record and its roster; it is hidden from "
             "Live Session and the Inspector until brought back.")
    if st.button("Archive", type="primary", key="course_archive"):
        svc.archive_course(url, user, code, archived=True)
        flash(f"{plain(code)} archived", ":material/inventory_2:")
        st.rerun()


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
        changed = _saved(lambda v: svc.update_details(url, user, course.code, expected_version=v, name=name,
                                                      schedule=schedule, room=room, **changes))
        if changed is not None:
            flash(f"Saved {svc.changed_text(changed)}" if changed else "Nothing changed", ":material/save:")
            st.rerun()
with tab_details:
    if course.archived:
        st.info("This course is archived: its sessions and records are kept, and it is not offered for new "
                "sessions.", icon=":material/inventory_2:")
        if st.button("Bring back from the archive", key="course_unarchive"):
            svc.archive_course(url, user, course.code, archived=False)
            flash(f"{plain(course.code)} is active again", ":material/unarchive:")
            st.rerun()
    elif st.button("Archive this course…", key="course_archive_open"):
        _archive_dialog(course.code)

# --- roster -----------------------------------------------------------------------------------
with tab_roster:
    roster = svc.roster(url, user, course.code)
    roster_rows, others = roster.rows, roster.others
    st.markdown(f"**{len(roster_rows)} students on the roster of {plain(course.code)}**")
    if roster_rows:
        st.dataframe(roster_rows, hide_index=True, width="stretch", column_config={
            "student_id": st.column_config.TextColumn("Student ID"), "name": st.column_config.TextColumn("Name"),
            "email": st.column_config.TextColumn("E-mail"), "consent": st.column_config.CheckboxColumn("Consent"),
            "samples": st.column_config.NumberColumn("Face photos", help="Accepted enrollment photos")})
        missing = [r["student_id"] for r in roster_rows if not r["consent"] or r["samples"] == 0]
        if missing:
            st.warning(f"{len(missing)} student(s) cannot be recognised yet (no consent or no face samples): "
                       f"{plain(', '.join(missing[:10]))}{'…' if len(missing) > 10 else ''}. Enroll them on **Students**.")
    a, b = st.columns(2)
    with a, st.form("roster_add", clear_on_submit=True):
        st.markdown("**Add existing students**")
        names = dict(others)
        picked = st.multiselect("Students", list(names), format_func=lambda sn, _n=names: f"{sn} — {_n[sn]}",
                                placeholder="Choose students" if names else "No other student of yours to add")
        st.caption("Students of your other courses. A student only on someone else's course is added by an "
                   "administrator." if not user.is_admin else "Any student already registered.")
        if st.form_submit_button("Add to roster") and picked:
            try:
                added = svc.add_students(url, user, course.code, picked)
            except AccessDenied as exc:
                st.error(plain(exc))
            else:
                flash(f"{added} student(s) added to {plain(course.code)}")
                st.rerun()
    with b, st.form("roster_remove", clear_on_submit=True):
        st.markdown("**Remove from roster**")
        rnames = {r["student_id"]: r["name"] for r in roster_rows}
        drop = st.multiselect("Students", list(rnames), format_func=lambda sn, _n=rnames: f"{sn} — {_n[sn]}",
                              key="roster_drop")
        st.caption("Their attendance history stays; they are no longer expected in new sessions.")
        if st.form_submit_button("Remove") and drop:
            n = svc.remove_students(url, user, course.code, drop)
            flash(f"{n} student(s) removed from {plain(course.code)}", ":material/person_remove:")
            st.rerun()

    st.markdown("**Import a roster CSV** — columns `student_id,name[,email]` (comma or semicolon separated)")
    up = st.file_uploader("Roster CSV", type=["csv", "txt"], key="roster_csv")
    if up is not None:
        try:
            parsed = parse_roster_csv(up.getvalue())
        except RosterFileError as exc:
            st.error(f"{plain(up.name)}: {plain(exc)}")
        else:
            if parsed.errors:
                st.error(f"{len(parsed.errors)} row(s) cannot be imported:\n\n" + plain_lines(parsed.errors[:50]))
            if parsed.rows:
                st.dataframe([{"Line": r.line, "Student ID": r.student_id, "Name": r.name, "E-mail": r.email or ""}
                              for r in parsed.rows], hide_index=True, width="stretch", height=200)
                st.caption("Imported students have no recorded consent yet: an administrator records the signed "
                           "forms on **Students** (many at once), or each student gives it on their own page.")
                if st.button(f"Import {len(parsed.rows)} valid row(s) into {plain(course.code)}", type="primary",
                             key="roster_import"):
                    res = svc.import_roster(url, user, course.code, parsed.rows)
                    for w in res.warnings:  # flashed: a plain warning would vanish in the rerun below
                        flash(plain(w), ":material/warning:")
                    flash(f"Roster import: {len(res.created)} new students, {len(res.added)} added to the roster, "
                          f"{len(res.already)} already there" + (f", {len(res.refused)} refused" if res.refused else ""))
                    st.rerun()

# --- capture plan, threshold, rules ----------------------------------------------------------------
with tab_plan:
    config = course.config
    plan, rules, rec = config.plan, config.rules, config.recognition
    # Not a form: "use the model's default" must disable the threshold slider as it is ticked.
    # Keys carry the course version, so a saved (or someone else's) change starts from the stored values.
    k = f"{course.id}_{course.version}"
    dur = svc.duration_text
    st.markdown("**Capture plan** — the first snapshot a while after the start (late-comers have sat down), "
                "the next a fixed time later, the last at a random moment before the end.")
    c1, c2, c3, c4 = st.columns(4)
    n = c1.number_input("Snapshots", 1, 10, plan.snapshots, key=f"plan_n_{k}")
    t1 = c2.number_input("First after (min)", 0.0, 600.0, round(plan.first_after_s / 60, 2), step=1.0,
                         key=f"plan_t1_{k}", help="Minutes from the start of the session to the first snapshot")
    t2 = c3.number_input("Next after (min)", 0.0, 600.0, round(plan.second_after_s / 60, 2), step=1.0,
                         key=f"plan_t2_{k}", help="Minutes from the first snapshot to the next one")
    length = c4.number_input("Session length (min)", 1.0, 900.0, round(plan.session_length_s / 60, 2), step=5.0,
                             key=f"plan_len_{k}")
    try:
        new_plan = svc.plan_from_minutes(int(n), float(t1), float(t2), float(length), keep=plan)
    except ConfigError as exc:
        new_plan = None
        st.error(f"This plan does not fit: {plain(exc)}")
    else:
        st.caption(f"{new_plan.snapshots} snapshot(s): the first after {dur(new_plan.first_after_s)}"
                   + (f", the next {dur(new_plan.second_after_s)} later" if new_plan.snapshots >= 3 else "")
                   + (f", the last at a random time between {dur(new_plan.capture_plan().last_window[0])} and "
                      f"{dur(new_plan.capture_plan().last_window[1])}" if new_plan.snapshots >= 2 else "")
                   + f" · each a burst of {new_plan.burst_frames} frame(s)")

    st.markdown("**Recognition threshold** — cosine similarity a face needs to be named: higher means fewer "
                "wrong names and more faces left unknown.")
    model_default = svc.calibrated_threshold(base_config()[0])
    use_default = st.checkbox(f"Use the model's calibrated default ({model_default:.2f})", value=rec.threshold is None,
                              key=f"thr_default_{k}")
    thr_value = st.slider("Threshold", 0.0, 1.0, float(rec.threshold if rec.threshold is not None else model_default),
                          0.01, key=f"thr_value_{k}", disabled=use_default,
                          help="Greyed out while the model's default is used")
    if rec.source:
        st.caption(f"Set from: {plain(rec.source)} (model {plain(rec.model or 'any')})")
    classroom = st.checkbox("Also match against the photos as the room camera sees them (small, dim, noisy)",
                            value=rec.classroom_templates, key=f"classroom_{k}",
                            help="Classroom-resolution templates: more back-row faces named, with their own "
                                 "calibrated threshold (docs/EVALUATION.md, 'Recognition levers')")

    st.markdown("**Status rules**")
    r1, r2, r3 = st.columns(3)
    gaps = r1.number_input("Tolerated missed snapshots in between", 0, 9, rules.tolerate_gaps, key=f"rule_gaps_{k}")
    statuses = [x.value for x in Status]
    middle = r2.selectbox("Seen only in between", statuses, index=statuses.index(rules.middle_only.value),
                          format_func=status_label, key=f"rule_middle_{k}",
                          help="Not in the first snapshot and not in the last: late and left early")
    interrupted = r3.selectbox("Left and came back", statuses, index=statuses.index(rules.interrupted.value),
                               format_func=status_label, key=f"rule_interrupted_{k}")
    r4, r5 = st.columns(2)
    min_frac = r4.slider("Absent if seen in fewer than this share of snapshots", 0.0, 1.0,
                         float(rules.min_present_fraction), 0.05, key=f"rule_frac_{k}")
    min_conf = r5.slider("Ignore sightings below this similarity (no evidence)", 0.0, 1.0,
                         float(rules.min_confidence), 0.01, key=f"rule_conf_{k}")
    if st.button("Save plan and rules", type="primary", key="save_plan", disabled=new_plan is None):
        if use_default:
            new_rec = RecognitionConfig(classroom_templates=classroom)
        elif rec.threshold is not None and abs(thr_value - rec.threshold) < 1e-9:
            new_rec = rec.model_copy(update={"classroom_templates": classroom})  # keep where it came from
        else:
            new_rec = RecognitionConfig(threshold=round(thr_value, 4), source=f"set by {user.username}",
                                        classroom_templates=classroom)
        try:
            new = config.with_values(
                plan=new_plan,
                rules={"tolerate_gaps": int(gaps), "middle_only": middle, "interrupted": interrupted,
                       "min_present_fraction": min_frac, "min_confidence": min_conf},
                recognition=new_rec)
        except (ConfigError, ValueError) as exc:
            st.error(f"Not saved: {plain(svc.readable_config_error(exc))}")
        else:
            changed = _save_config(new)
            if changed is not None:
                flash(f"Saved {svc.changed_text(changed)}" if changed else "Nothing changed", ":material/save:")
                st.rerun()

# --- camera ------------------------------------------------------------------------------------------
with tab_camera:
    from aas_core.capture.cameras import SECRETS_FILE
    from aas_core.services import rooms as rooms_svc

    st.markdown("The classroom camera used by **Live Session** and `aas session capture` (the scheduler uses the "
                "camera of each meeting's room, this one for meetings without a room). Rooms and their cameras are "
                "managed on **Rooms**; passwords are never stored in the database: they stay in the environment "
                f"(`AAS_CAMERAS`) or in `{SECRETS_FILE}` under `[cameras.NAME]`, and a course stores only the "
                "camera's name.")
    cams = rooms_svc.known_cameras(cfg, url)
    for info in cams.values():
        if info.problem:
            st.warning(f"{plain(info.name)}: {plain(info.problem)}")
    with st.form("course_camera"):
        names = [None, *sorted(cams)]
        current = course.config.camera
        if current is not None and current not in names:
            names.append(current)
        cam_name = st.selectbox("Camera", names, index=names.index(current),
                                format_func=lambda n: "— none —" if n is None else
                                (f"{n} ({cams[n].kind}, {cams[n].where or cams[n].kind}"
                                 f"{', room ' + cams[n].room if cams[n].room else ''})" if n in cams
                                 else f"{n} (not configured on this server)"))
        if not cams:
            st.caption("No camera is configured on this server yet.")
        if st.form_submit_button("Save camera"):
            changed = _save_config(course.config.with_values(camera=cam_name))
            if changed is not None:
                flash("Camera saved" if cam_name else "Camera removed", ":material/photo_camera:")
                st.rerun()

# --- timetable -----------------------------------------------------------------------------------------
with tab_timetable:
    from aas_core.ui.timetable import timetable_section

    timetable_section(url, user, course.code)

# --- at-risk notices and Moodle (services.notify, services.moodle; same calls as `aas notify` / `aas moodle`) --
with tab_reach:
    from aas_core.services import moodle, notify

    st.markdown("**At-risk notices** — e-mail the students under the course's attendance threshold (and you a "
                "digest). *Preview* shows who would get one; nothing is sent.")
    n1, n2 = st.columns(2)
    if n1.button("Preview notices", key="notify_preview", icon=":material/visibility:"):
        try:
            plan = notify.send_at_risk(url, user, course.code, settings(), dry_run=True)
        except (notify.NotifyError, ValueError, PermissionError) as exc:
            st.error(plain(exc))
        else:
            st.session_state["notify_plan"] = plan.as_json()
    if n2.button("Send notices", key="notify_send", icon=":material/send:"):
        try:
            plan = notify.send_at_risk(url, user, course.code, settings())
        except (notify.NotifyError, ValueError, PermissionError) as exc:
            st.error(plain(exc))
        else:
            flash(f"{len(plan.sent)} notice(s) sent.")
            st.session_state["notify_plan"] = plan.as_json()
            st.rerun()
    shown = st.session_state.get("notify_plan")
    if shown and shown["course"] == course.code:
        st.caption(f"Threshold {shown['threshold']:.0%} over the last {shown['last']} decided sessions: "
                   f"{len(shown['at_risk'])} student(s) at risk, {len(shown['notices'])} notice(s) "
                   f"{'would be sent' if shown['dry_run'] else 'planned'}, {len(shown['sent'])} sent.")
        for x in shown["at_risk"]:
            st.markdown(f"- {plain(x['student_id'])}: {x['rate']:.0%} over {x['sessions']} session(s)")
        for s_ in shown["skipped"]:
            st.caption(f"{plain(s_['who'])}: {plain(s_['reason'])}")

    st.divider()
    st.markdown("**Moodle** — export a session for the attendance activity's import, or push the final "
                "statuses through Moodle's web services (`AAS_MOODLE_URL` and its token).")
    sessions = moodle.decided_session_ids(url, user, course.code)
    if not sessions:
        st.caption("No decided session yet.")
    else:
        m1, m2, m3 = st.columns(3)
        sid = m1.selectbox("Session", sessions, key="moodle_session")
        try:
            name, data = moodle.export_csv(url, user, course.code, int(sid))
            m2.download_button("Export CSV for Moodle", data, file_name=name, mime="text/csv", key="moodle_csv")
        except (moodle.MoodleError, ValueError) as exc:
            m2.caption(plain(exc))
        dry = m3.toggle("Dry run (show the requests only)", value=True, key="moodle_dry")
        if st.button("Push statuses to Moodle", key="moodle_push", icon=":material/upload:"):
            try:
                res = moodle.push(url, user, course.code, settings(), dry_run=dry)
            except (moodle.MoodleError, ValueError, PermissionError) as exc:
                st.error(plain(exc))
            else:
                st.success(f"{'Would send' if res.dry_run else 'Sent'} {len(res.writes)} status update(s) "
                           f"for {len(res.sessions)} session(s).")
                if res.writes:
                    st.json([w.as_json() for w in res.writes[:50]], expanded=False)
