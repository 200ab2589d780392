"""Live Session: run a class session (camera plan or uploaded snapshots), watch each snapshot's
result arrive, then review statuses with the evidence and override where needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from aas_core.db.models import Role
from aas_core.domain.course_config import PlanConfig
from aas_core.redact import redact_text
from aas_core.services import corrections, courses
from aas_core.services import review as live
from aas_core.services.camera_session import CameraSession, start_course_capture
from aas_core.services.sessions import NoSnapshots, SessionService
from aas_core.ui.auth import require_user
from aas_core.ui.enroll import IMAGE_TYPES, decode_uploads
from aas_core.ui.text import plain
from aas_core.ui.resources import base_config, database_url, get_pipeline, image_store, session_review, settings
from aas_core.ui.widgets import flash, pick_course, show_bgr, show_flashes

user = require_user(Role.INSTRUCTOR)
show_flashes()
url = database_url()
cfg = settings()
store = image_store()
st.title(":material/videocam: Live Session")

course_list = courses.list_courses(url, user, active_only=True)
if not course_list:
    st.info("Create a course and enroll its students first (**Courses**, **Students**).")
    st.stop()
dur = courses.duration_text

course = pick_course(course_list, key="live_course")
assert course is not None
config = course.config
roster = courses.roster(url, user, course.code).rows
plan = config.plan


def plan_text(p: PlanConfig) -> str:
    return (f"{p.snapshots} snapshots: the first after {dur(p.first_after_s)}, the next {dur(p.second_after_s)} "
            f"later, the last at a random time before {dur(p.session_length_s)}")


st.caption(f"{len(roster)} students on the roster · plan: {plan_text(plan)}")
if not roster:
    st.warning("The roster is empty: every face will be 'unknown'. Add students on **Courses**.")


def _service() -> SessionService:
    pipe = get_pipeline(base_config()[0])  # the course threshold is applied per session by the service
    for note in live.pipeline_notes(pipe, config):
        st.warning(plain(note))
    return SessionService(url, store, pipe, cfg)


@st.cache_resource(show_spinner=False)
def _camera_runs() -> dict[int, CameraSession]:
    """Camera sessions running in this server process (survive reruns and page reloads)."""
    return {}


#: The capture runner's states in words.
RUN_STATE = {"idle": "not started", "waiting": "waiting for the next snapshot", "capturing": "taking a snapshot",
             "done": "all snapshots taken", "stopped": "stopped", "failed": "failed"}

tab_upload, tab_camera = st.tabs(["Run from uploaded images", "Camera"])

# --- uploaded snapshots ---------------------------------------------------------------------------
with tab_upload:
    st.markdown("For demos without a camera: 1–5 classroom photos, used as the session's snapshots in order. "
                "With several frames per snapshot, consecutive photos form one snapshot's burst (fused into one).")
    gen = st.session_state.setdefault("live_upload_gen", 0)
    files = st.file_uploader("Snapshots", type=IMAGE_TYPES, accept_multiple_files=True, key=f"live_files_{gen}")
    files = files or []
    if st.checkbox("Order by file name", value=True):
        files = sorted(files, key=lambda f: f.name)
    # A burst per snapshot, like the camera takes: frames 1..N are snapshot 1, N+1..2N snapshot 2, ...
    per = int(st.number_input("Frames per snapshot", min_value=1, max_value=10, value=1, key="live_frames",
                              help="Photos taken a moment apart of the same scene: each group of this many "
                                   "consecutive uploads is one snapshot, its faces fused over the frames."))
    groups = [files[i:i + per] for i in range(0, len(files), per)]
    if files and len(files) % per:
        st.error(f"{len(files)} images do not split into snapshots of {per} frames.")
    elif len(groups) > 5:
        st.error(f"{len(groups)} snapshots: a session has at most 5.")
    elif files:
        st.caption(" → ".join(f"{i + 1}: {' + '.join(f.name for f in g)}" for i, g in enumerate(groups)))
        if st.button(f"Run session with {len(groups)} snapshot(s)", type="primary", key="live_run"):
            decoded, bad = decode_uploads([(f.name, f.getvalue()) for f in files], cfg)
            if bad:
                for r in bad:
                    st.error(f"{plain(r.name)}: {plain('; '.join(r.reasons))}")
                st.stop()
            frames = [img for _, img in decoded]
            images = [frames[i:i + per] if per > 1 else frames[i] for i in range(0, len(frames), per)]
            try:
                svc = _service()
            except Exception as exc:  # noqa: BLE001 - missing weights etc.
                st.error(f"Cannot load the face models: {plain(exc)}")
                st.stop()
            names = {r["student_id"]: live.box_label(r["student_id"], r["name"]) for r in roster}
            progress = st.progress(0.0, text="Starting…")
            with st.status(f"Processing {len(images)} snapshot(s)…", expanded=True) as status:
                cols = st.columns(len(images))

                def on_processed(k: int, img, result) -> None:  # type: ignore[no-untyped-def]
                    progress.progress((k + 1) / len(images), text=f"Snapshot {k + 1}/{len(images)} done")
                    with cols[k]:
                        if isinstance(result, Exception):
                            st.error(f"Snapshot {k + 1} failed: {plain(result)}")
                            return
                        # drawn at display size and given as JPEG bytes, which st.image sends as they
                        # are (an array it re-encodes at quality 100; benchmarks/e2e_overhead.py)
                        st.image(live.processed_jpeg(img, result, names), width="stretch")
                        rec = sum(a is not None for a in (result.match.assigned if result.match else []))
                        st.caption(f"Snapshot {k + 1}: {len(result)} faces, {rec} recognised · "
                                   f"{result.timings_ms.get('total', 0):.0f} ms")

                try:
                    outcome = svc.run_from_images(course.code, images, actor=user.username,
                                                  on_processed=on_processed)
                except NoSnapshots as exc:
                    status.update(label=plain(exc), state="error")
                    st.stop()
                except (LookupError, ValueError) as exc:
                    status.update(label=f"Session failed: {plain(exc)}", state="error")
                    st.stop()
                sid = outcome.session_id
                status.update(label=f"Session {sid} done: {len(outcome.statuses)} students, "
                                    f"{outcome.unknown_faces} unknown face(s)", state="complete", expanded=False)
            st.session_state["live_session_id"] = st.session_state["review_pick"] = sid
            st.session_state["live_upload_gen"] = gen + 1
            flash(f"Session {sid} finished: review the statuses below", ":material/task_alt:")
            st.rerun()

# --- camera ---------------------------------------------------------------------------------------
with tab_camera:
    runs = _camera_runs()
    active = next((r for r in runs.values() if r.course_code == course.code and not r.finished), None)
    if not config.camera:
        st.info("No camera chosen for this course: pick one on **Courses → Camera**. "
                "Use *Run from uploaded images* meanwhile.")
    else:
        cam_cfg = None
        try:
            cam_cfg = courses.course_camera(cfg, config, course.code, url=url)
        except (LookupError, ValueError) as exc:
            st.error(plain(exc))
        if cam_cfg is not None:
            # display_url is redact_url'd; redact_text again in case a name holds a URL
            st.markdown(f"**{plain(redact_text(cam_cfg.name or cam_cfg.kind))}** · "
                        f"{plain(redact_text(cam_cfg.display_url or cam_cfg.kind))}")
            # The last preview's outcome for this course's camera: a session is never started on a
            # camera whose preview just failed (it would run the whole plan without a picture).
            preview_key = f"cam_preview_ok_{course.code}_{config.camera}"
            a, b, c = st.columns(3)
            if a.button("Preview (grab one frame)", key="cam_preview", disabled=active is not None):
                from aas_core.capture import CameraError, grab_within, make_camera

                camera = make_camera(cam_cfg)
                try:
                    with st.spinner("Grabbing…"):
                        # bounded as a whole: a camera that trickles its answer must not hang the page
                        # (the backend's own request deadline is timeout_s; one read may add as much)
                        st.session_state["cam_preview_img"] = grab_within(camera, 2 * cam_cfg.timeout_s + 1)
                    st.session_state[preview_key] = True
                except CameraError as exc:  # messages are redacted (CameraError) and meant for people
                    st.session_state.pop("cam_preview_img", None)
                    st.session_state[preview_key] = False
                    st.error(plain(exc))
                except Exception as exc:  # noqa: BLE001 - a backend bug: a message, never a traceback
                    st.session_state.pop("cam_preview_img", None)
                    st.session_state[preview_key] = False
                    st.error(plain(redact_text(f"Preview failed: {exc.__class__.__name__}: {exc}")))
                finally:
                    camera.close()
            for col, on in ((b, True), (c, False)):
                if col.button(f"Light {'on' if on else 'off'}", key=f"cam_light_{on}", disabled=active is not None):
                    from aas_core.capture import CameraError, make_camera

                    camera = make_camera(cam_cfg)
                    try:
                        camera.light(on)
                        st.toast(f"Light {'on' if on else 'off'}", icon=":material/lightbulb:")
                    except CameraError as exc:
                        st.error(plain(exc))
                    except Exception as exc:  # noqa: BLE001 - a backend bug: a message, never a traceback
                        st.error(plain(redact_text(f"Light {'on' if on else 'off'} failed: {exc.__class__.__name__}: {exc}")))
                    finally:
                        camera.close()
            if st.session_state.get("cam_preview_img") is not None:
                show_bgr(st.session_state["cam_preview_img"], caption="Preview")

            st.markdown("**Capture plan**")
            demo = st.checkbox("Demo timing (snapshots after 10 s, 20 s and before 60 s)", key="cam_demo")
            if demo:
                # the course's burst, with the demo's snapshots spaced wide enough to hold it
                room = max(5.0, plan.burst_span_s + 1.0)
                t2 = max(10.0, room * max(1, plan.snapshots - 2))
                plan = PlanConfig(snapshots=plan.snapshots, first_after_s=10, second_after_s=t2,
                                  session_length_s=max(60.0, 10 + t2 + 3 * room), margin_s=room,
                                  burst_frames=plan.burst_frames, burst_interval_s=plan.burst_interval_s)
            st.caption(plan_text(plan) + ".")
            use_light = st.checkbox("Switch the light on for each snapshot", value=cam_cfg.use_builtin_light,
                                    key="cam_use_light")
            preview_failed = st.session_state.get(preview_key) is False
            if active is None and preview_failed:
                st.warning("The last preview failed: fix the camera and preview again before starting a session.",
                           icon=":material/videocam_off:")
            if active is None and st.button("Start session", type="primary", key="cam_start",
                                            disabled=preview_failed):
                from aas_core.capture import make_camera

                try:
                    run = start_course_capture(_service(), make_camera(cam_cfg), plan, course_code=course.code,
                                               camera_name=config.camera, actor=user.username,
                                               settle_s=cfg.light_settle_s, use_light=use_light)
                except Exception as exc:  # noqa: BLE001
                    st.error(plain(redact_text(f"Could not start: {exc}")))
                else:
                    runs[run.session_id] = run
                    st.session_state["live_session_id"] = st.session_state["review_pick"] = run.session_id
                    st.rerun()

    if active is not None:

        @st.fragment(run_every=1)
        def _runner_panel() -> None:
            run = _camera_runs().get(active.session_id)
            if run is None:
                return
            stt = run.runner.status
            now = datetime.now(UTC)
            st.markdown(f"**Session {run.session_id}** · {RUN_STATE.get(stt.state, plain(str(stt.state)))} · "
                        f"{len(stt.taken)} of {stt.total} snapshots taken · {len(stt.missing)} missing")
            if stt.next_due_at is not None:
                left = max(timedelta(0), stt.next_due_at - now)
                st.metric(f"Snapshot {(stt.next_index or 0) + 1} in", f"{int(left.total_seconds()) // 60:02d}:"
                                                                       f"{int(left.total_seconds()) % 60:02d}")
            elif stt.state == "capturing":
                st.info("Capturing…")
            st.progress(len(stt.taken + stt.missing) / max(1, stt.total))
            for e in stt.errors[-5:]:
                st.warning(plain(redact_text(e)))
            # A snapshot was stored/processed since the page last drew: redraw it (annotated result below).
            states = live.snapshot_states(url, run.session_id)
            if st.session_state.get("cam_states") != states:
                st.session_state["cam_states"] = states
                st.rerun(scope="app")
            if run.finished:  # the plan is done and attendance has been decided
                st.rerun(scope="app")

        _runner_panel()
        if st.button("Stop and decide now", key="cam_stop"):
            outcome = active.stop(close_camera=True)
            if outcome is None:
                flash(f"Session {active.session_id} stopped: no snapshot was taken, so no attendance was recorded",
                      ":material/warning:")
            else:
                flash(f"Session {outcome.session_id} stopped and decided", ":material/stop_circle:")
            st.rerun()

# --- review ---------------------------------------------------------------------------------------
st.divider()
st.subheader("Review")
# Read after the camera panel decided whether a run is active: a run that ended meanwhile is then
# either still drawn (and its panel reruns the page when it ends) or already shown as ended here.
recent = live.recent_sessions(url, user, course.code)
ids = [r[0] for r in recent]
current = st.session_state.get("live_session_id")
if current not in ids:
    current = ids[0] if ids else None
if current is None:
    st.caption("No session of this course yet: run one above, from uploaded photos or the camera.")
    st.stop()
SESSION_STATE = {"running": "running", "completed": "decided", "aborted": "closed without attendance",
                 "planned": "planned"}
labels = {sid: f"#{sid} · {t:%Y-%m-%d %H:%M} UTC · {SESSION_STATE.get(stat, stat)}" for sid, t, stat in recent}
if st.session_state.get("review_pick") not in ids:
    st.session_state["review_pick"] = current
current = st.selectbox("Session", ids, format_func=lambda i, _l=labels: _l[i], key="review_pick")
st.session_state["live_session_id"] = current

# Cached per change of the session, of consent and of its crops (a withdrawal drops the cache entry).
review = session_review(url, store, user, current)
listed = next(stat for sid, _, stat in recent if sid == current)
if review.status != listed:
    # The session changed state between the two reads (a camera run just ended): read both again,
    # so the picker never says "running" about a session the review shows as closed.
    st.rerun()
if review.status == "running":
    st.info("This session is still running: statuses appear when it is decided.")
elif review.status == "aborted":
    st.warning("This session was closed without attendance: no snapshot could be captured and processed.")

# snapshots
st.markdown(f"**Snapshots** ({len(review.snapshots)} of {review.n_snapshots}) · "
            f"at most {review.unknown_faces} unknown face(s) in one snapshot")
cols = st.columns(max(1, review.n_snapshots))
for k in range(review.n_snapshots):
    view = next((v for v in review.snapshots if v.index == k), None)
    with cols[k]:
        if view is None:
            st.caption(f"Snapshot {k + 1}: not taken yet")
            continue
        if view.jpeg is not None:
            st.image(view.jpeg, width="stretch")  # JPEG at display size: sent as it is
        cap = f"Snapshot {k + 1}: {view.status}"
        if view.status == "processed":
            cap += f" · {view.faces} faces, {view.recognised} recognised"
            if view.timings_ms:
                cap += f" · {view.timings_ms.get('total', 0):.0f} ms"
        st.caption(cap)
        if view.error:
            st.error(plain(view.error))


def _delete_panel(session_id: int, status: str) -> None:
    """A test run or an aborted session goes, with its photos and records (audited)."""
    running = [sid for sid, r in _camera_runs().items() if not r.finished]
    with st.expander("Delete this session", icon=":material/delete:"):
        st.caption("For a test run or an aborted session: its snapshots, face crops and attendance records are "
                   "deleted. This cannot be undone.")
        if status == "running" or session_id in running:
            st.caption("A running session cannot be deleted: stop it first.")
            return
        confirm = st.text_input("Type the session number to confirm", key=f"del_confirm_{session_id}",
                                placeholder=str(session_id))
        if st.button(f"Delete session #{session_id}", key="session_delete",
                     disabled=confirm.strip().lstrip("#") != str(session_id)):
            try:
                counts = live.delete_session(url, store, user, session_id, running=running)
            except (LookupError, ValueError) as exc:
                st.error(plain(exc))
            else:
                st.session_state.pop("live_session_id", None)
                st.session_state.pop("review_pick", None)
                flash(f"Session #{session_id} deleted: {counts['snapshots']} snapshot(s), {counts['records']} "
                      f"record(s), {counts['files']} file(s)", ":material/delete:")
                st.rerun()


if not review.rows:
    _delete_panel(review.session_id, review.status)
    st.stop()

# A count per status, exceptions first (what needs a look before the statuses are signed off);
# badges on one line, which wrap on a phone instead of stacking six metrics.
BADGE = {"needs_review": "orange", "absent": "red", "late": "orange", "left_early": "violet", "attended": "green",
         "unknown": "gray"}
st.markdown(" ".join(f":{BADGE.get(key, 'gray')}-badge[{label} **{n}**]"
                     for key, label, n in live.status_counts(review)))

# Students the decision could not settle (a face too poor to identify, a status resting on seat
# continuity alone) come first, with why: "absent" for them means "nobody could tell yet".
pending = live.needs_review(review)
if pending:
    with st.container(border=True):
        st.markdown(f"**Needs review ({len(pending)})** — the automatic status is a guess here: check the "
                    "snapshots and save a final status.")
        for r in pending:
            st.markdown(f"- **{plain(r.student_number)}** {plain(r.name)} · automatic "
                        f"*{live.status_label(r.auto_status)}*")
            for why in r.needs_review:
                st.caption(plain(why))

roster_names = {r["student_id"]: r["name"] for r in roster} | {r.student_number: r.name for r in review.rows}
if review.unknown:
    with st.expander(f"Unknown faces ({len(review.unknown)}) — faces no enrolled student matched; "
                     "name one if you know who it is"):
        ucols = st.columns(6)
        for i, ev in enumerate(review.unknown[:60]):
            with ucols[i % 6]:
                if ev.crop is not None:
                    show_bgr(ev.crop, width=110)
                top = ", ".join(f"{live.box_label(t[0], roster_names.get(t[0], ''))} {t[1]:.2f}"
                                for t in (ev.top or [])[:3])
                st.caption(f"#{i + 1} · S{ev.snapshot + 1} · {plain(top) if top else 'no candidates'}")
        # "That face is student X": fixes this session and, with consent, teaches the gallery.
        with st.form("correct_face"):
            fc1, fc2, fc3 = st.columns([1, 2, 2])
            face_no = fc1.number_input("Face #", 1, min(60, len(review.unknown)), 1)
            who = fc2.selectbox("is student", [r.student_number for r in review.rows],
                                format_func=lambda sn: live.box_label(sn, roster_names.get(sn, ""), 40))
            learn = fc3.checkbox("add the face to their gallery (needs consent; quality-gated)")
            if st.form_submit_button("That face is this student") and who:
                ev = review.unknown[int(face_no) - 1]
                try:
                    _, sample = live.correct_face(_service(), user, ev.observation_id, who, add_to_gallery=learn)
                except (LookupError, ValueError) as exc:
                    st.error(plain(exc))
                else:
                    flash(f"Face #{face_no} is now {plain(who)}; statuses re-decided", ":material/how_to_reg:")
                    if sample is not None:
                        flash(f"Gallery: {plain(sample.line())}",
                              ":material/add_a_photo:" if sample.accepted else ":material/block:")
                    st.rerun()

st.markdown("**Statuses and evidence** — exceptions first. Change *Final* and give a *Reason*, then save. "
            "S1…S3: the face matched to the student in each snapshot.")
base_rows = live.editor_rows(review)
# Edits not saved yet, by student id (never by row position, see review.editor_key).
pending_key, gen_key = f"review_pending_{review.session_id}", f"review_gen_{review.session_id}"
unsaved: dict[str, tuple[str, str]] = st.session_state.get(pending_key, {})
editor_key = live.editor_key(review.session_id, base_rows, st.session_state.get(gen_key, 0))
image_cols = {f"S{k + 1}": st.column_config.ImageColumn(f"S{k + 1}", width="small") for k in range(review.n_snapshots)}
edited = st.data_editor(
    pd.DataFrame(live.with_pending(base_rows, unsaved)), key=editor_key, hide_index=True, width="stretch",
    num_rows="fixed", row_height=64,
    disabled=["student_id", "name", "auto", "presence", *image_cols, "similarity", "review", "overridden_by"],
    column_config={
        "student_id": st.column_config.TextColumn("Student", width="small"),
        "name": st.column_config.TextColumn("Name", width="medium"),
        "auto": st.column_config.TextColumn("Automatic", width="small"),
        "presence": st.column_config.TextColumn("Seen", help="✓ seen · ✗ not seen · – no evidence (snapshot "
                                                             "missing, or could not tell)"),
        **image_cols,
        "similarity": st.column_config.TextColumn("Similarity", help="Per snapshot (cosine, 0–1)"),
        "review": st.column_config.TextColumn("Needs review", help="Why the automatic status is uncertain"),
        "final": st.column_config.SelectboxColumn("Final", options=live.STATUS_VALUES, required=True,
                                                  format_func=live.status_label),
        "reason": st.column_config.TextColumn("Reason", help="Required for a change", width="medium"),
        "overridden_by": st.column_config.TextColumn("Overridden by", width="medium",
                                                     help="Who changed the automatic status, and when"),
    })
changes = live.changed_rows(base_rows, edited.to_dict("records"))
st.session_state[pending_key] = changes
if st.button(f"Save {len(changes)} override(s)" if changes else "Save overrides", type="primary",
             disabled=not changes, key="review_save"):
    res = live.apply_overrides(url, user, review.session_id, changes)
    if res.errors:
        for e in res.errors:
            st.error(plain(e))
    else:
        st.session_state.pop(pending_key, None)
        st.session_state.pop(editor_key, None)
        st.session_state[gen_key] = st.session_state.get(gen_key, 0) + 1  # a fresh editor on the saved rows
        flash(f"Saved {len(res.saved)} override(s)", ":material/save:")
        st.rerun()

@st.dialog("Override a status")
def _override_dialog(session_id: int, options: dict[str, str], finals: dict[str, str]) -> None:
    sn = st.selectbox("Student", list(options), format_func=lambda x, _o=options: _o[x], key="ovr_student")
    new = st.selectbox("New status", live.STATUS_VALUES, index=live.STATUS_VALUES.index(finals[sn])
                       if finals[sn] in live.STATUS_VALUES else 0, key="ovr_status", format_func=live.status_label)
    reason = st.text_input("Reason", key="ovr_reason", placeholder="e.g. seen in class, face covered")
    if st.button("Save override", type="primary", key="ovr_save"):
        res = live.apply_overrides(url, user, session_id, {sn: (new, reason)})
        if res.errors:
            st.error(plain("; ".join(res.errors)))
        else:
            flash(f"{plain(sn)}: {live.status_label(new)} saved", ":material/save:")
            st.rerun()


if st.button("Override one student…", key="override_open"):
    _override_dialog(review.session_id, {r.student_number: f"{r.student_number} — {r.name} "
                                                           f"({live.status_label(r.final_status)})"
                                         for r in review.rows},
                     {r.student_number: r.final_status for r in review.rows})

with st.expander("Evidence for one student (larger crops, top matches)"):
    # the first student (exceptions first) with a face to show
    first_seen = next((i for i, r in enumerate(review.rows) if r.evidence), 0)
    pick = st.selectbox("Student", [r.student_number for r in review.rows], key="evidence_pick", index=first_seen,
                        format_func=lambda sn: next(f"{r.student_number} — {r.name}" for r in review.rows
                                                    if r.student_number == sn))
    row = next(r for r in review.rows if r.student_number == pick)
    st.caption(f"automatic {live.status_label(row.auto_status)} · final {live.status_label(row.final_status)} · "
               f"seen {row.presence}"
               + (f" · overridden by {plain(row.overridden_by)}: {plain(row.reason)}" if row.overridden_by else ""))
    if not row.evidence:
        st.caption("Not recognised in any snapshot.")
    ecols = st.columns(max(1, review.n_snapshots))
    for ev in row.evidence:
        with ecols[ev.snapshot % len(ecols)]:
            if ev.crop is not None:
                show_bgr(ev.crop, width=160)
            how = "self check-in" if ev.source == "self_check_in" else "similarity"
            st.caption(f"S{ev.snapshot + 1} · {how} {ev.similarity:.2f}" if ev.similarity is not None
                       else f"S{ev.snapshot + 1}")
            # "That face is not this student": unnamed, kept as a negative for them (services.corrections).
            if ev.source != "self_check_in" and ev.observation_id is not None and st.button(
                    "Not this student", key=f"not_{ev.observation_id}", icon=":material/person_off:",
                    help="The face becomes unknown and teaches the matcher: a later face that looks more like "
                         "this one than like the student goes to review instead of counting."):
                try:
                    corrections.reject_face(_service(), user, ev.observation_id)
                except (LookupError, ValueError) as exc:
                    st.error(plain(exc))
                else:
                    flash(f"That face is no longer {plain(row.student_number)}; statuses re-decided",
                          ":material/person_off:")
                    st.rerun()

_delete_panel(review.session_id, review.status)
