"""Check-in: students check themselves in from a phone during a session's check-in window (the
code on the room's screen, then a selfie checked against their own photos); instructors show the
code of their own running session here (display mode). Also where the link in an at-risk e-mail
leads to switch those e-mails off (``?optout=...``, no sign-in needed)."""

from __future__ import annotations

import streamlit as st

from aas_core.db.models import Role
from aas_core.media.decode import ImageError, decode_image
from aas_core.services import checkin, notify
from aas_core.services import courses as course_svc
from aas_core.ui.auth import require_user
from aas_core.ui.resources import base_config, database_url, get_pipeline, image_store, settings
from aas_core.ui.text import plain

url = database_url()
cfg = settings()

# --- the opt-out link of an e-mail: the token is the proof, a click confirms (mail scanners open
# links, and merely opening one must change nothing) --------------------------------------------------
token = st.query_params.get("optout")
if token:
    st.title("Attendance e-mails")
    st.write("Stop the e-mails AAS sends when your attendance in a course falls under its threshold?")
    if st.button("Stop these e-mails", type="primary", key="optout_confirm"):
        if notify.opt_out_by_link(url, cfg, str(token)):
            st.success("Done: you will get no more attendance e-mails. Sign in and open Check-in to switch them "
                       "on again.")
        else:
            st.error("This link is not valid. Sign in and switch the e-mails off on the Check-in page, or ask your "
                     "instructor.")
    st.stop()

user = require_user()
is_student = user.role == Role.STUDENT and not user.is_admin
WINDOW_KEY, DONE_KEY = "checkin_window", "checkin_done"

if is_student:
    # --- a student: code, then selfie ---------------------------------------------------------------
    st.title(":material/how_to_reg: Check in")
    done = st.session_state.pop(DONE_KEY, None)
    if done:
        st.success(done)
    window: checkin.WindowView | None = st.session_state.get(WINDOW_KEY)
    if window is None:
        st.caption("During the lecture, enter the 6-digit code shown on the room's screen. It changes every "
                   "30 seconds.")
        with st.form("checkin_code", clear_on_submit=True):
            code = st.text_input("Code on the room's screen", max_chars=7, placeholder="123 456")
            if st.form_submit_button("Next", type="primary", width="stretch"):
                try:
                    st.session_state[WINDOW_KEY] = checkin.enter_code(url, user, code, cfg)
                except checkin.CheckInRefused as exc:
                    st.error(plain(str(exc)))
                else:
                    st.rerun()
    else:
        st.info(f"Code accepted for {plain(window.course_code)} ({plain(window.course_name)}). Now a selfie: "
                "only your face, looking at the camera, in good light.")
        shot = st.camera_input("Selfie", key="checkin_selfie")
        upload = st.file_uploader("Or upload a photo of yourself taken now", type=["jpg", "jpeg", "png", "webp"],
                                  key="checkin_upload")
        photo = shot or upload
        if st.button("Check in", type="primary", disabled=photo is None, width="stretch", key="checkin_submit"):
            assert photo is not None
            try:
                image = decode_image(photo.getvalue(), name=photo.name, max_pixels=cfg.max_image_pixels)
            except ImageError as exc:
                st.error(plain(f"That photo cannot be read: {exc}"))
            else:
                with st.spinner("Checking your photo…"):
                    pipeline = get_pipeline(base_config()[0])
                    try:
                        result = checkin.submit_selfie(url, image_store(), pipeline, cfg, user, window.id, image)
                    except checkin.CheckInRefused as exc:
                        st.error(plain(str(exc)))
                        if exc.attempts_left == 0:
                            st.session_state.pop(WINDOW_KEY, None)
                    else:
                        st.session_state.pop(WINDOW_KEY, None)
                        st.session_state[DONE_KEY] = (f"You are checked in for {plain(result.course_code)} "
                                                      f"(snapshot {result.snapshot_index + 1}).")
                        st.rerun()
        if st.button("Enter another code", key="checkin_restart"):
            st.session_state.pop(WINDOW_KEY, None)
            st.rerun()

    mine = checkin.my_check_ins(url, user)
    if mine:
        st.subheader("My check-ins")
        st.dataframe(mine, hide_index=True, width="stretch", column_config={
            "course": st.column_config.TextColumn("Course"), "session_id": st.column_config.NumberColumn("Session"),
            "snapshot": st.column_config.NumberColumn("Snapshot"),
            "at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm")})

    st.subheader("Attendance e-mails")
    if user.student_number:
        off = notify.opted_out(url, user, user.student_number)
        wanted = st.toggle("E-mail me when my attendance in a course falls under its threshold", value=not off,
                           key="notices_on")
        if wanted == off:  # the toggle differs from what is stored: store it
            notify.set_opt_out(url, user, user.student_number, not wanted)
            st.rerun()
    st.stop()

# --- an instructor or an admin: display mode for their own running sessions ----------------------------
st.title(":material/how_to_reg: Check-in (display)")
sessions = checkin.display_sessions(url, user)


def _online_form(expanded: bool) -> None:
    """Start a session without a camera (an online lecture): its snapshots are check-ins."""
    mine = course_svc.list_courses(url, user)
    if not mine:
        return
    with st.expander("Online lecture (no camera)", expanded=expanded), st.form("checkin_online"):
        codes = {c.code: c for c in mine}
        code = st.selectbox("Course", list(codes), format_func=lambda c: f"{c} · {codes[c].name}")
        n = st.number_input("Check-ins during the lecture", min_value=1, max_value=10,
                            value=codes[code].config.plan.snapshots if code else 3, step=1)
        st.caption("Each check-in counts like a snapshot: seen at the first and the last = attended.")
        if st.form_submit_button("Start an online session"):
            try:
                checkin.start_online_session(url, user, code, snapshots=int(n))
            except ValueError as exc:
                st.error(plain(str(exc)))
            else:
                st.rerun()


if not sessions:
    st.info("No session of your courses is running. Start one on Live Session (a check-in then counts for one of "
            "its snapshots), or an online lecture below.")
    _online_form(expanded=True)
    st.stop()
by_id = {x.session_id: x for x in sessions}
picked = st.selectbox("Running session", list(by_id), key="checkin_session",
                      format_func=lambda k: f"{by_id[k].course_code} · session {k} · started "
                                            f"{by_id[k].started_at:%H:%M} UTC"
                                            + (" · online" if by_id[k].online else ""))
sess = by_id[picked]


def _end_online() -> None:
    """An online session ends here (a camera session ends when its snapshots are taken)."""
    if not sess.online:
        return
    if st.button("End the lecture and decide attendance", key="checkin_finish"):
        with st.spinner("Deciding…"):
            outcome = checkin.finish_online_session(url, image_store(), get_pipeline(base_config()[0]), cfg, user,
                                                    sess.session_id)
        if outcome is None:
            st.warning("No check-in was held: the session was closed without attendance.")
        else:
            counts = {v: list(outcome.statuses.values()).count(v) for v in sorted(set(outcome.statuses.values()))}
            st.success("Decided: " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in counts.items())
                       + ". Review it on Live Session.")

if sess.window is None:
    first_free = next((k for k in range(sess.n_snapshots) if k not in sess.windows_held), 0)
    with st.form("checkin_open"):
        snap = st.selectbox("Counts for snapshot", list(range(sess.n_snapshots)), index=first_free,
                            format_func=lambda k: f"Snapshot {k + 1} of {sess.n_snapshots}"
                                                  + (" (had a check-in already)" if k in sess.windows_held else ""))
        minutes = st.number_input("Open for (minutes)", min_value=1, max_value=180,
                                  value=int(round(sess.default_minutes)), step=1)
        st.caption("A check-in counts like being seen in that snapshot" + (
            "." if sess.online else "; it counts only if the camera's snapshot was taken."))
        if st.form_submit_button("Open check-in and show the code", type="primary"):
            try:
                checkin.open_window(url, user, sess.session_id, int(snap), minutes=float(minutes))
            except ValueError as exc:
                st.error(plain(str(exc)))
            else:
                st.rerun()
    _end_online()
    _online_form(expanded=False)
    st.stop()

window = sess.window
st.caption(f"{plain(sess.course_code)} · snapshot {window.snapshot_index + 1} of {window.n_snapshots}. Students "
           "open Check-in on their phone and enter this code.")


@st.fragment(run_every=1)
def _code_display() -> None:
    try:
        view = checkin.current_code(url, user, window.id, cfg)
    except ValueError:  # closed meanwhile (its time is up, or the session ended)
        st.rerun(scope="app")
        return
    # Digits made here, never user text: safe as HTML, and large enough to read across a room.
    st.markdown(f"<div data-testid='checkin-code' style='font-size:min(22vw,9rem);font-weight:700;"
                f"letter-spacing:.12em;text-align:center;font-variant-numeric:tabular-nums'>"
                f"{view.code[:3]}&nbsp;{view.code[3:]}</div>", unsafe_allow_html=True)
    st.progress(view.seconds_left / checkin.CODE_STEP_S, text=f"New code in {view.seconds_left} s")
    mins, secs = divmod(view.closes_in_s, 60)
    st.caption(f"{view.checked_in} of {view.roster} students checked in · check-in closes in {mins}:{secs:02d}")


_code_display()
if st.button("Close check-in", key="checkin_close"):
    checkin.close_window(url, user, window.id)
    st.rerun()
_end_online()
