"""Follow-up (instructors): what needs a person after the sessions — students' disputes, unknown
people who keep coming back, and the corrections that teach the matcher."""

from __future__ import annotations

import streamlit as st

from aas_core.db.models import Role
from aas_core.domain.attendance import Status
from aas_core.services import corrections, courses, disputes, unknowns
from aas_core.services.sessions import SessionService
from aas_core.ui.auth import require_user
from aas_core.ui.resources import base_config, database_url, get_pipeline, image_store, settings
from aas_core.ui.text import plain
from aas_core.ui.widgets import flash, pick_course, show_bgr, show_flashes, status_text

user = require_user(Role.INSTRUCTOR)
show_flashes()
url = database_url()
store = image_store()
st.title(":material/assignment_late: Follow-up")
st.caption("Disputes from students, unknown people seen again and again, and the corrections behind each "
           "student's gallery.")

STATUSES = [s.value for s in Status]


def _faces(ids, width: int = 96) -> None:  # type: ignore[no-untyped-def]
    if not ids:
        st.caption("No face photo kept.")
        return
    cols = st.columns(min(len(ids), 6))
    for k, oid in enumerate(ids):
        try:
            with cols[k % len(cols)]:
                show_bgr(disputes.course_face(url, store, user, oid), width=width)
        except (FileNotFoundError, OSError):
            cols[k % len(cols)].caption("photo no longer kept")


def _service() -> SessionService:
    return SessionService(url, store, get_pipeline(base_config()[0]), settings())


tab_disputes, tab_unknown, tab_corrections = st.tabs(["Disputes", "Unknown people", "Corrections"])

# --- disputes ------------------------------------------------------------------------------------
with tab_disputes:
    waiting = disputes.open_disputes(url, user)
    if not waiting:
        st.info("No open disputes. Students dispute a status on their **My sessions** page.")
    for d in waiting:
        with st.container(border=True):
            st.markdown(f"**{plain(d.student)} — {plain(d.student_name)}** · session {d.session_id} · "
                        f"status {status_text(d.status_before)} · sent {d.created_at:%Y-%m-%d %H:%M} UTC")
            st.markdown(f"> {plain(d.message)}")
            _faces(d.evidence)
            with st.form(f"resolve_{d.id}"):
                choice = st.radio("Answer", ["Change the status", "The status stands"], horizontal=True,
                                  key=f"resolve_choice_{d.id}")
                new = st.selectbox("New status", STATUSES, key=f"resolve_status_{d.id}",
                                   format_func=lambda v: v.replace("_", " "))
                reason = st.text_input("Reason (the student reads it)", max_chars=disputes.MAX_REASON,
                                       key=f"resolve_reason_{d.id}")
                if st.form_submit_button("Send answer"):
                    try:
                        uphold = choice == "Change the status"
                        disputes.resolve(url, user, d.id, uphold=uphold, reason=reason,
                                         new_status=new if uphold else None)
                    except (ValueError, PermissionError) as exc:
                        st.error(plain(exc))
                    else:
                        flash("Answer sent.")
                        st.rerun()

course_list = courses.list_courses(url, user)

# --- recurring unknown people --------------------------------------------------------------------
with tab_unknown:
    if not course_list:
        st.info("No courses yet: create one on **Courses**; unknown faces seen again and again show up here.")
    else:
        course = pick_course(course_list, key="follow_course")
        assert course is not None
        pipe = get_pipeline(base_config()[0])
        groups = unknowns.recurring_unknowns(url, user, course.code, pipe.embedder.default_threshold)
        if not groups:
            st.info("No unknown person was seen in more than one of the last sessions of this course.")
        roster = courses.roster(url, user, course.code).rows
        names = {r["student_id"]: r["name"] for r in roster}
        numbers = list(names)
        for g in groups[:20]:
            with st.container(border=True):
                st.markdown(f"**{g.describe().capitalize()}** · {len(g.observation_ids)} faces · last seen "
                            f"{g.last_seen:%Y-%m-%d}")
                _faces(list(g.best))
                c1, c2 = st.columns([3, 1])
                with c1, st.form(f"name_{g.key}"):
                    who = st.selectbox("This is", numbers, key=f"name_who_{g.key}",
                                       format_func=lambda sn: f"{sn} — {names[sn]}")
                    learn = st.checkbox("Add the best faces to their photos (needs their consent)", value=True,
                                        key=f"name_learn_{g.key}")
                    if st.form_submit_button("This is this student") and who:
                        try:
                            sessions, outcomes = unknowns.name_cluster(_service(), user, course.code,
                                                                       g.observation_ids, who, best=g.best,
                                                                       add_to_gallery=learn)
                        except (ValueError, PermissionError) as exc:
                            st.error(plain(exc))
                        else:
                            kept = sum(o.accepted for o in outcomes)
                            flash(f"{who}: {len(sessions)} session(s) decided again, {kept} photo(s) added.")
                            st.rerun()
                if c2.button("Visitor: ignore from now on", key=f"visitor_{g.key}"):
                    try:
                        unknowns.dismiss_cluster(url, user, course.code, g.observation_ids)
                    except (ValueError, PermissionError) as exc:
                        st.error(plain(exc))
                    else:
                        flash("Marked as a visitor.")
                        st.rerun()

# --- corrections -----------------------------------------------------------------------------------
with tab_corrections:
    if not course_list:
        st.info("No courses yet: create one on **Courses**; the corrections made in its sessions show up here.")
    else:
        course = pick_course(course_list, key="follow_course_corr")
        assert course is not None
        roster = courses.roster(url, user, course.code).rows
        names = {r["student_id"]: r["name"] for r in roster}
        who = st.selectbox("Student", list(names), key="corr_student", format_func=lambda sn: f"{sn} — {names[sn]}")
        if who:
            g = corrections.for_student(url, user, who)
            st.metric("Standing corrections against this student", g.standing,
                      help="Faces an instructor said were not this student; a later match closer to one of "
                           "them than to the student's own photos goes to review instead.")
            st.caption(f"{g.added_from_corrections} of their photos came from corrections.")
            for c in g.negatives:
                line = (f"{c.made_at:%Y-%m-%d} · {c.course} · session {c.session_id} · by {plain(c.made_by)}"
                        + (f" · said to be {plain(c.assigned_to)}" if c.assigned_to else ""))
                cols = st.columns([4, 1])
                if c.undone:
                    cols[0].caption(line + " · undone")
                    continue
                cols[0].write(line + ("" if c.still_counts else " · face no longer kept: no longer counts"))
                if cols[1].button("Undo", key=f"undo_{c.id}"):
                    corrections.undo(url, user, c.id)
                    flash("Correction undone.")
                    st.rerun()
