"""Students: add students, record consent, enroll faces (photos, webcam, short video), manage the gallery.

Students (role student) see and manage only themselves.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from aas_core.db.models import Role
from aas_core.services import students as svc
from aas_core.services.auth import AccessDenied, AuthUser
from aas_core.ui import enroll as en
from aas_core.ui.auth import require_user
from aas_core.media.draw import fit, jpeg_bytes
from aas_core.services import privacy as svc_privacy
from aas_core.services.roster import RosterFileError
from aas_core.ui.text import plain, plain_lines
from aas_core.ui.resources import base_config, database_url, get_pipeline, image_store, settings
from aas_core.ui.webcam import live_capture
from aas_core.ui.widgets import flash, page_slice, show_flashes

user = require_user()
show_flashes()
url = database_url()
cfg = settings()
store = image_store()
is_student = user.role == Role.STUDENT and not user.is_admin
st.title(":material/school: " + ("My photos & consent" if is_student else "Students"))
st.caption("Your consent to face recognition and the photos it recognises you by." if is_student else
           "Everyone on your courses: add students, record their consent, and enroll the face photos "
           "recognition uses.")
STUDENTS_PER_PAGE = 50
#: Enrollment figures in words, with units (never "roll_deg -0").
FIGURE_TEXT = {"face_px": ("face", "{:.0f} px"), "blur": ("sharpness", "{:.0f}"),
               "det_score": ("detector", "{:.2f}"), "yaw": ("turned", "{:+.2f}"), "roll_deg": ("tilt", "{:.0f}°"),
               "similarity": ("like own photos", "{:.2f}")}


def figure_text(figures: dict[str, float]) -> str:
    out = []
    for k, v in figures.items():
        label, fmt = FIGURE_TEXT.get(k, (k.replace("_", " "), "{:.2f}"))
        out.append(f"{label} {fmt.format(0.0 if k == 'roll_deg' and abs(v) < 0.5 else v)}")
    return " · ".join(out)


@st.cache_data(show_spinner=False, max_entries=512)
def _thumb(db: str, viewer: AuthUser, sample_id: int, image_path: str | None, side: int = 200) -> bytes | None:
    """A gallery thumbnail, read through the access-checked service (cached per viewer and sample).

    ``image_path`` (a random name per stored photo) is part of the key: SQLite reuses the id
    of a deleted row, so a key of the id alone could show a withdrawn student's photo for
    someone else's new sample."""
    try:
        return jpeg_bytes(fit(svc.sample_photo(db, store, viewer, sample_id), side))
    except (FileNotFoundError, LookupError, ValueError, AccessDenied):
        return None


# --- who may be shown -------------------------------------------------------------------------
if is_student and not user.student_number:
    st.error("This account is not linked to a student record; ask an administrator.")
    st.stop()
listing = svc.visible_students(url, user)
rows, course_codes = listing.rows, listing.course_codes

# --- add a student (instructors / admins) ------------------------------------------------------
if not is_student:
    left, right = st.columns([3, 2])
    with right, st.form("add_student", clear_on_submit=True):
        st.markdown("**Add a student**")
        sid = st.text_input("Student ID", key="add_sid", placeholder="s12345")
        name = st.text_input("Name", key="add_name")
        email = st.text_input("E-mail (optional)", key="add_email")
        course_opts = course_codes + ([None] if user.is_admin else [])
        course_code = st.selectbox("Put on the roster of", course_opts, key="add_course",
                                   format_func=lambda c: "— no course —" if c is None else c,
                                   help="Instructors add students to one of their courses.")
        consent = st.checkbox(
            "The student has given written consent to face enrollment", key="add_consent",
            disabled=not user.is_admin,
            help=None if user.is_admin else "Only an administrator or the student themself can record consent.")
        if st.form_submit_button("Add student", type="primary"):
            if not sid.strip() or not name.strip():
                st.error("Student ID and name are required.")
            elif not user.is_admin and not course_code:
                st.error("Create a course first: instructors add students to one of their courses.")
            else:
                try:
                    new_sid = svc.create_student(url, user, sid, name, email=email,
                                                 consent=consent and user.is_admin, course_code=course_code)
                except (ValueError, LookupError, AccessDenied) as exc:
                    st.error(plain(exc))
                else:
                    st.session_state["students_pick"] = new_sid
                    flash(f"Student {plain(new_sid)} added" + (f" to {plain(course_code)}" if course_code else ""))
                    st.rerun()
    with left:
        st.markdown(f"**{len(rows)} student(s)**" + ("" if user.is_admin else " on your courses"))
        if rows:
            f1, f2 = st.columns([2, 3])
            query = f1.text_input("Search by id or name", key="students_query", placeholder="s1006 or Lima")
            chosen = f2.pills("Show only", list(svc.FILTERS), selection_mode="multi", key="students_filters",
                              format_func=lambda k: svc.FILTERS[k][0]) or []
            shown = svc.filter_students(rows, chosen, query)
            if not shown:
                st.caption("No student matches: clear the search or the filters.")
            else:
                part = page_slice(len(shown), STUDENTS_PER_PAGE, key=f"students_page_{query}_{'-'.join(chosen)}")
                st.dataframe(shown[part], hide_index=True, width="stretch",
                             height=min(420, 38 + 35 * (part.stop - part.start)),
                             column_config={"student_id": st.column_config.TextColumn("Student ID"),
                                            "name": st.column_config.TextColumn("Name"),
                                            "email": st.column_config.TextColumn("E-mail"),
                                            "courses": st.column_config.TextColumn("Courses"),
                                            "consent": st.column_config.CheckboxColumn("Consent"),
                                            "samples": st.column_config.NumberColumn("Photos"),
                                            "held": st.column_config.NumberColumn("Pending review")})
        else:
            st.info("No students yet: add one with the form, or import a roster CSV on **Courses**.")

# --- photos held for review (instructors / admins) -------------------------------------------------


def _review_queue() -> None:
    """Every held photo of the reviewer's students: photo, reason, Accept / Reject (one service call each)."""
    held = svc.pending_samples(url, user)
    if not held:
        return
    st.markdown(f"#### :material/pending: Held for review ({len(held)})")
    st.caption("Held photos are not used for recognition until accepted. Reject photos that do not show the student.")
    for x in held:
        pic, info, act = st.columns([1, 3, 2])
        data = _thumb(url, user, x.id, x.image_path, 160)
        if data:
            pic.image(data, width="stretch")
        info.markdown(f"**{plain(x.student_number)} — {plain(x.name)}** · {x.source} by {x.added_by or 'unknown'} · "
                      f"{x.created_at:%Y-%m-%d %H:%M}")
        info.caption(plain(x.reason or ""))
        why = act.text_input("Reason (needed to reject)", key=f"review_reason_{x.id}")
        ok_col, no_col = act.columns(2)
        try:
            if ok_col.button("Accept", key=f"review_accept_{x.id}", type="primary"):
                svc.review_sample(url, store, user, x.id, accept=True, reason=why)
                flash(f"Photo of {plain(x.student_number)} accepted", ":material/check_circle:")
                st.rerun()
            if no_col.button("Reject", key=f"review_reject_{x.id}"):
                if not why.strip():
                    act.error("Give a reason: the student sees it.")
                else:
                    svc.review_sample(url, store, user, x.id, accept=False, reason=why)
                    _thumb.clear()
                    flash(f"Photo of {plain(x.student_number)} rejected", ":material/cancel:")
                    st.rerun()
        except (ValueError, LookupError, AccessDenied) as exc:  # e.g. reviewed meanwhile in another tab
            act.error(plain(exc))


if not is_student:
    _review_queue()


def _bulk_consent() -> None:
    """Signed consent forms recorded for many students at once (the consent policy: administrators)."""
    missing = {r["student_id"]: r["name"] for r in rows if not r["consent"]}
    with st.expander(f"Record consent from signed forms ({len(missing)} without consent)",
                     icon=":material/fact_check:"):
        by_pick, by_csv = st.tabs(["Pick students", "Upload a CSV of forms"])
        with by_pick, st.form("bulk_consent", clear_on_submit=False):
            picked = st.multiselect("Students whose signed form you hold", list(missing),
                                    format_func=lambda sn: f"{sn} — {missing[sn]}", key="bulk_consent_pick",
                                    placeholder="Choose students" if missing else "Everybody has consented")
            d1, d2 = st.columns(2)
            signed = d1.date_input("Signed on", key="bulk_consent_date", format="YYYY-MM-DD")
            ref = d2.text_input("Form reference (optional)", key="bulk_consent_ref", max_chars=120,
                                placeholder="e.g. consent forms 2026, folder 3")
            if st.form_submit_button("Record consent", type="primary") and picked:
                _record_forms([svc_privacy.ConsentForm(sn, signed, ref or None) for sn in picked])
        with by_csv:
            st.caption("Columns `student_id,signed_on,reference` (dates as YYYY-MM-DD; comma or semicolon "
                       "separated). Students who consented already are left as they are.")
            up = st.file_uploader("Consent forms CSV", type=["csv", "txt"], key="consent_csv")
            if up is not None:
                try:
                    forms, errors = svc_privacy.parse_consent_csv(up.getvalue())
                except RosterFileError as exc:
                    st.error(f"{plain(up.name)}: {plain(exc)}")
                else:
                    if errors:
                        st.error(f"{len(errors)} line(s) cannot be used:\n\n" + plain_lines(errors[:50]))
                    if forms and st.button(f"Record {len(forms)} consent form(s)", type="primary",
                                           key="consent_csv_record"):
                        _record_forms(forms)


def _record_forms(forms: list) -> None:  # type: ignore[type-arg]
    try:
        res = svc.record_consent_forms(url, user, forms)
    except AccessDenied as exc:
        st.error(plain(exc))
        return
    for why in res.refused:
        flash(plain(why), ":material/warning:")
    flash(f"Consent recorded for {len(res.recorded)} student(s)"
          + (f", {len(res.already)} had consented already" if res.already else "")
          + (f", {len(res.refused)} refused" if res.refused else ""), ":material/fact_check:")
    st.rerun()


if user.is_admin and rows:
    _bulk_consent()

if not listing.names:
    st.stop()

# --- one student --------------------------------------------------------------------------------
st.divider()
numbers, names = listing.numbers, listing.names
if is_student:
    current = numbers[0]
else:
    if st.session_state.get("students_pick") not in numbers:
        st.session_state["students_pick"] = numbers[0]
    current = st.selectbox("Student", numbers, key="students_pick", format_func=lambda n, _n=names: f"{n} — {_n[n]}")

try:
    detail = svc.student_detail(url, user, current)
except AccessDenied as exc:
    st.error(plain(exc))
    st.stop()
has_consent, consent_at = detail.has_consent, detail.consent_given_at

st.subheader(f"{plain(current)} — {plain(names[current])}")

# consent -------------------------------------------------------------------------------------
c1, c2 = st.columns([3, 1])
if has_consent:
    c1.success(f"Consent to face enrollment recorded on {consent_at:%Y-%m-%d} (UTC)"
               + (f", signed form {plain(detail.consent_reference)}" if detail.consent_reference else "") + ".")
elif is_student:
    c1.warning("You have not given consent yet: without it no photo of you is enrolled and you are never "
               "recognised. Give it with the button when you agree.")
else:
    c1.warning("No consent recorded: photos cannot be enrolled and the student is never recognised. "
               + ("Record the signed form here, or for many students at once above." if user.is_admin else
                  "An administrator records it from the signed form, or the student gives it on their own page "
                  "(My photos & consent)."))


@st.dialog("Withdraw consent?")
def _withdraw_dialog(sn: str) -> None:
    st.write(f"Every face photo, embedding and face crop of **{plain(sn)}** is deleted. Attendance records stay.")
    if st.button("Withdraw consent and delete photos", type="primary"):
        counts = svc.withdraw_consent(url, store, user, sn)
        flash(f"Consent withdrawn; {counts['samples']} sample(s) and {counts['crop_files']} crop(s) deleted",
              ":material/delete:")
        st.rerun()


@st.dialog("Erase student?")
def _erase_dialog(sn: str) -> None:
    st.write(f"Deletes **{plain(sn)}**, their photos, embeddings, face crops, attendance records and account. "
             "This cannot be undone.")
    confirm = st.text_input("Type the student ID to confirm")
    if st.button("Erase", type="primary", disabled=confirm.strip() != sn):
        svc.erase_student(url, store, user, sn)
        st.session_state.pop("students_pick", None)
        flash(f"Student {plain(sn)} erased", ":material/delete:")
        st.rerun()


with c2:
    if not has_consent and (user.is_admin or is_student):
        if st.button("I give my consent" if is_student else "Record consent", type="primary", key="give_consent"):
            svc.give_consent(url, user, current)
            flash("Consent recorded")
            st.rerun()
    elif has_consent and st.button("Withdraw consent", key="withdraw_consent"):
        _withdraw_dialog(current)
    if user.is_admin and st.button("Erase student…", key="erase_student"):
        _erase_dialog(current)

if not is_student:
    with st.expander("Edit name and e-mail", icon=":material/edit:"), st.form(f"edit_student_{current}"):
        new_name = st.text_input("Name", value=names[current], key=f"edit_name_{current}")
        new_email = st.text_input("E-mail (optional)", value=detail.email or "", key=f"edit_email_{current}")
        if st.form_submit_button("Save name and e-mail"):
            try:
                changed = svc.update_student(url, user, current, name=new_name, email=new_email)
            except (ValueError, LookupError, AccessDenied) as exc:
                st.error(plain(exc))
            else:
                flash(f"Saved {', '.join('e-mail' if c == 'email' else c for c in changed)}" if changed
                      else "Nothing changed", ":material/save:")
                st.rerun()

# enrollment ------------------------------------------------------------------------------------
st.markdown("#### Enroll face photos")
res_key = f"enroll_results_{current}"
if not has_consent:
    st.info("Photos are enrolled once consent is recorded: " + (
        "give it above." if is_student else "record it above." if user.is_admin else
        "an administrator records it from the signed form, or the student gives it on their own page."))
else:
    gen = st.session_state.setdefault("enroll_gen", 0)
    tab_up, tab_cam, tab_vid = st.tabs(["Upload photos", "Webcam", "Short video"])
    uploads: list[tuple[str, bytes]] = []
    source = "upload"
    video: tuple[str, bytes] | None = None
    with tab_up:
        files = st.file_uploader("Photos of this student only (several angles, good light)", type=en.IMAGE_TYPES,
                                 accept_multiple_files=True, key=f"enroll_files_{gen}",
                                 help=f"At most {cfg.max_upload_files} photos and {cfg.max_upload_pixels / 1e6:.0f} MP "
                                      "per upload; more are skipped with a message.")
        if files and len(files) > cfg.max_upload_files:
            st.warning(f"{len(files)} photos: only the first {cfg.max_upload_files} are enrolled in one upload.")
        if files and st.button(f"Enroll {len(files)} photo(s)", type="primary", key="enroll_upload"):
            # Bytes only (compressed, capped in size); each photo is decoded when its turn comes.
            uploads = [(f.name, f.getvalue()) for f in files]
    with tab_cam:
        cam_mode = st.radio("Camera", ["Snapshot", "Live webcam (streaming)"], horizontal=True,
                            key="enroll_cam_mode", label_visibility="collapsed")
        if cam_mode == "Snapshot":
            shot = st.camera_input("Take a photo", key=f"enroll_cam_{gen}")
            if shot is not None and st.button("Enroll this photo", type="primary", key="enroll_webcam"):
                uploads, source = [("webcam.jpg", shot.getvalue())], "webcam"
        else:
            try:
                live_pipe = get_pipeline(base_config()[0])
            except Exception as exc:  # noqa: BLE001 - e.g. model weights missing
                st.error(f"Cannot load the face models: {exc}")
            else:
                grabbed = live_capture(live_pipe, key="enroll_live")
                if grabbed is not None:
                    uploads, source = [grabbed], "webcam"
    with tab_vid:
        st.caption("A few seconds turning the head slightly: one frame every 0.5 s is checked, the best are kept.")
        vid = st.file_uploader("Video", type=en.VIDEO_TYPES, key=f"enroll_video_{gen}")
        keep = st.slider("Keep the best", 1, 10, 5, key="enroll_keep")
        if vid is not None and st.button("Enroll from video", type="primary", key="enroll_from_video"):
            video = (vid.name, vid.getvalue())

    if uploads or video:
        try:
            pipeline = get_pipeline(base_config()[0])
        except Exception as exc:  # noqa: BLE001 - e.g. model weights missing
            st.error(f"Cannot load the face models: {exc}")
            st.stop()
        results: list[en.EnrollResult] = []
        images: Any = []
        total = 0
        if video:
            with st.spinner("Sampling the video…"):
                try:
                    images, n_frames = en.video_frames(video[1], video[0], pipeline, cfg, keep=keep)
                    total = len(images)
                    source = "video"
                    st.toast(f"{n_frames} frames sampled, best {len(images)} kept")
                except ValueError as exc:
                    results.append(en.EnrollResult(video[0], False, [str(exc)]))
        elif uploads:
            images, total = en.iter_uploads(uploads, cfg), len(uploads)  # a generator: decoded one by one
        if total:
            bar = st.progress(0.0, text="Enrolling…")
            try:
                results += en.enroll(url, user, current, images, pipeline, store, cfg, source=source, total=total,
                                     progress=lambda i, n, name: bar.progress(i / n, text=f"{i}/{n}: {plain(name)}"))
            except PermissionError as exc:  # consent withdrawn meanwhile: nothing was stored
                st.error(plain(exc))
                st.stop()
            bar.empty()
        st.session_state[res_key] = [r.as_dict() for r in results]
        st.session_state["enroll_gen"] = gen + 1  # clears the upload widgets
        ok = sum(r.accepted for r in results)
        held = sum(r.status == "pending" for r in results)
        flash(f"{ok} of {len(results)} accepted" + (f", {held} held for review" if held else ""),
              ":material/check_circle:" if ok else ":material/warning:")
        st.rerun()

    last = st.session_state.get(res_key)
    if last:
        ok = sum(r["accepted"] for r in last)
        held = sum(r.get("status") == "pending" for r in last)
        st.markdown(f"**Last batch: {ok} accepted, {held} held for review, {len(last) - ok - held} rejected**")
        cols = st.columns(4)
        for i, r in enumerate(last):
            with cols[i % 4]:
                if r["thumb"]:
                    st.image(r["thumb"], width=180)
                if r["accepted"]:
                    st.markdown(f":green[:material/check_circle:] **{plain(r['name'])}** accepted")
                elif r.get("status") == "pending":
                    st.markdown(f":orange[:material/pending:] **{plain(r['name'])}** held for review: "
                                f"{plain('; '.join(r['reasons']))}")
                else:
                    st.markdown(f":red[:material/cancel:] **{plain(r['name'])}** rejected: {plain('; '.join(r['reasons']))}")
                for w in r["warnings"]:
                    st.caption(f":orange[:material/warning:] {plain(w)}")
                f = r["figures"]
                if f:
                    st.caption(figure_text(f))

# gallery (photos at most 160 px wide: on a phone the columns stack and a full-width face fills the screen)
photos = detail.photos
st.markdown(f"#### Enrolled photos ({len(photos)})")
if not photos:
    st.caption("None yet.")
else:
    cols = st.columns(6)
    for i, x in enumerate(photos):
        with cols[i % 6]:
            data = _thumb(url, user, x.id, x.image_path) if x.image_path else None
            if data:
                st.image(data, width=160)
            st.caption(f":green[accepted] · {x.source} · face {x.face_px or 0:.0f} px · sharpness {x.blur or 0:.0f} · "
                       f"{x.created_at:%Y-%m-%d}")
            if st.button("Delete", key=f"del_sample_{x.id}"):
                svc.delete_sample(url, store, user, x.id)
                flash("Photo deleted", ":material/delete:")
                st.rerun()

# Held and rejected photos of this student, with the reason (reviewers act in "Held for review" above).
if detail.held:
    st.markdown(f"#### Held for review ({len(detail.held)})" if is_student else
                f"##### {plain(current)}: held for review ({len(detail.held)})")
    st.caption("Not used for recognition until an instructor or administrator accepts them.")
    cols = st.columns(6)
    for i, x in enumerate(detail.held):
        with cols[i % 6]:
            data = _thumb(url, user, x.id, x.image_path) if x.image_path else None
            if data:
                st.image(data, width=160)
            st.caption(f":orange[pending] · {x.source} · {x.created_at:%Y-%m-%d}: {plain(x.reason or '')}")
            if st.button("Delete", key=f"del_sample_{x.id}"):
                svc.delete_sample(url, store, user, x.id)
                flash("Photo deleted", ":material/delete:")
                st.rerun()
if detail.rejected:
    with st.expander(f"Rejected photos ({len(detail.rejected)})"):
        for x in detail.rejected:
            st.markdown(f":red[rejected] · {x.source} · {x.created_at:%Y-%m-%d}: {plain(x.reason or '')}")
