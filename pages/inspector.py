"""Pipeline Inspector: every stage of the face pipeline on one image, with every knob in the sidebar.

Stage results are cached per image and the config fields each stage depends on, so moving
the recognition threshold only re-runs matching, and the SR knobs do not re-run detection.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from aas_core.db.models import Role
from aas_core.media.decode import ImageError, decode_image
from aas_core.services import courses as course_service
from aas_core.services import in_transaction, privacy
from aas_core.services.review import box_label
from aas_core.ui import stages
from aas_core.ui.auth import require_user
from aas_core.ui.text import plain
from aas_core.media.draw import SOURCE_HEX, draw_detections, side_by_side
from aas_core.ui.enroll import IMAGE_TYPES
from aas_core.ui.resources import (
    base_config,
    database_url,
    get_pipeline,
    image_store,
    models_dir,
    settings,
)
from aas_core.ui.widgets import image_grid, page_slice, show_bgr, show_flashes
from aas_core.vision.face_quality import camera_advice
from aas_core.vision.profiles import PROFILES

STAGE_LABEL = {"persons": "Persons", "faces": "Faces", "enhance": "Enhance", "embed": "Embed", "match": "Match",
               "total": "Total"}
SOURCE_LABEL = {"person": "inside a person box", "tile": "on a tile", "frame": "on the whole frame"}

user = require_user(Role.INSTRUCTOR)
show_flashes()
url = database_url()
cfg_settings = settings()
store = image_store()
st.title(":material/biotech: Pipeline Inspector")
st.caption("See what recognition does with one photo, stage by stage: people and faces found, how each face was "
           "prepared, and whom it matched. Change the settings in the sidebar and watch the result.")


@st.cache_data(show_spinner=False, max_entries=8)
def _decode(data: bytes, name: str):  # type: ignore[no-untyped-def]
    return decode_image(data, name=name, max_pixels=cfg_settings.max_image_pixels,
                        max_bytes=cfg_settings.max_upload_bytes)


@st.cache_data(show_spinner=False, ttl=60)
def _model_files(mdir: str) -> dict[str, list[tuple[str, str | None]]]:
    """Per stage, (backend, file) choices whose weights are present."""
    from pathlib import Path

    from aas_core.vision.weights import load_manifest

    out: dict[str, list[tuple[str, str | None]]] = {"face": [], "enhance": [], "person": []}
    try:
        specs = load_manifest(mdir)
    except Exception:  # noqa: BLE001 - a broken manifest must not break the page
        specs = []
    for sp in specs:
        if sp.stage in out and (Path(mdir) / sp.file).is_file():
            out[sp.stage].append((sp.backend, sp.file))
    out["face"].append(("dlib-hog", None))
    out["enhance"].append(("clahe", None))
    return out


courses = course_service.list_courses(url, user)
snaps = in_transaction(url, privacy.stored_snapshots, user, limit=60)
codes = {c.id: c.code for c in courses}  # every course: stored snapshots of archived ones keep their label
course_ids = [c.id for c in courses if not c.archived]  # galleries to match against: active courses

# --- sidebar: image source and every knob -------------------------------------------------------
sb = st.sidebar
sb.header("Image")
source = sb.radio("Source", ["Upload", "Stored snapshot"], horizontal=True, key="insp_source")
image = None
img_name = ""
if source == "Upload":
    up = st.file_uploader("Image to inspect (a classroom snapshot, a group photo…)", type=IMAGE_TYPES,
                          key="insp_upload")
    if up is not None:
        try:
            image = _decode(up.getvalue(), up.name)
            img_name = up.name
        except ImageError as exc:
            st.error(plain(exc))
else:
    if not snaps:
        sb.caption("No stored snapshots in your courses yet.")
    else:
        snap_labels = {r[0]: f"{codes.get(r[4], '?')} · session {r[2]} · S{r[1] + 1} · {r[3]:%Y-%m-%d %H:%M}"
                       for r in snaps}
        snap_id = sb.selectbox("Snapshot", list(snap_labels), format_func=lambda i, _l=snap_labels: _l[i],
                               key="insp_snap")
        try:
            image = in_transaction(url, privacy.snapshot_image, store, user, snap_id)
            img_name = snap_labels[snap_id]
        except (FileNotFoundError, PermissionError) as exc:
            st.error(plain(exc))

sb.header("Pipeline")
profile = sb.selectbox("Profile", ["auto", *PROFILES], key="insp_profile",
                       index=(["auto", *PROFILES].index(cfg_settings.profile)
                              if cfg_settings.profile in ["auto", *PROFILES] else 0))
base, notes = base_config(profile)
for n in notes:
    sb.caption(n)
files = _model_files(str(models_dir()))

face_opts = files["face"] or [(base.face_backend, base.face_model)]
if (base.face_backend, base.face_model) not in face_opts:
    face_opts.insert(0, (base.face_backend, base.face_model))
face_choice = sb.selectbox("Face detector", face_opts, index=face_opts.index((base.face_backend, base.face_model)),
                           format_func=lambda t: f"{t[0]} · {t[1]}" if t[1] else t[0], key=f"insp_face_{profile}")
flows = ["persons", "tiled", "schedule", "frame"]
flow = sb.radio("Flow", flows, index=flows.index(base.flow), horizontal=True, key=f"insp_flow_{profile}",
                help="persons: faces inside person boxes · tiled: overlapping tiles of the frame · "
                     "schedule: whole frame at the scale the smallest face needs, fine strips where faces are "
                     "smaller · frame: whole frame")
face_conf = sb.slider("Face detection threshold", 0.05, 0.95, float(base.face_conf), 0.05, key="insp_face_conf")
person_opts = files["person"] or [(base.person_backend, base.person_model)]
person_choice = (base.person_backend, base.person_model)
person_conf = base.person_conf
if flow == "persons":
    if person_choice not in person_opts:
        person_opts.insert(0, person_choice)
    person_choice = sb.selectbox("Person detector", person_opts, index=person_opts.index(person_choice),
                                 format_func=lambda t: f"{t[0]} · {t[1]}", key=f"insp_person_{profile}")
    person_conf = sb.slider("Person detection threshold", 0.05, 0.95, float(base.person_conf), 0.05,
                            key="insp_person_conf")
min_face = sb.slider("Min face size (px)", 4, 120, int(base.min_face_px), 1, key="insp_min_face")
tile = base.tile
if flow == "tiled":
    tile = sb.select_slider("Tile size (px)", [320, 480, 640, 800, 960, 1280], value=base.tile
                            if base.tile in [320, 480, 640, 800, 960, 1280] else 640, key="insp_tile")
sr_on = sb.toggle("Super-resolution / enhancement of small faces", value=base.enhancer is not None,
                  key=f"insp_sr_{profile}")
enh_choice: tuple[str, str | None] | None = None
sr_below = base.sr_below_px
if sr_on:
    enh_opts = files["enhance"]
    current = (base.enhancer, base.enhancer_model) if base.enhancer else enh_opts[0]
    if current not in enh_opts:
        enh_opts.insert(0, current)
    enh_choice = sb.selectbox("Enhancer", enh_opts, index=enh_opts.index(current),
                              format_func=lambda t: f"{t[0]} · {t[1]}" if t[1] else t[0], key=f"insp_enh_{profile}")
    sr_below = sb.slider("Enhance faces smaller than (px)", 8, 160, int(base.sr_below_px), 4, key="insp_sr_below")

sb.header("Recognition")
course_opts = [None, *course_ids]
course_id = sb.selectbox("Course gallery", course_opts, index=1 if course_ids else 0, key="insp_course",
                         format_func=lambda i, _c=codes: "— none (detection only) —" if i is None else _c[i])
course = next((c for c in courses if c.id == course_id), None)

config = base.with_(flow=flow, face_backend=face_choice[0], face_model=face_choice[1], face_conf=float(face_conf),
                    person_backend=person_choice[0], person_model=person_choice[1], person_conf=float(person_conf),
                    min_face_px=int(min_face), tile=int(tile),
                    enhancer=enh_choice[0] if enh_choice else None,
                    enhancer_model=enh_choice[1] if enh_choice else None,
                    sr_below_px=int(sr_below), threshold=None, profile=f"inspector:{profile}")

if image is None:
    st.info("Upload an image (or pick a stored snapshot in the sidebar) to see every stage of the pipeline.")
    st.stop()

try:
    pipeline = get_pipeline(config)
except Exception as exc:  # noqa: BLE001 - missing weights, unknown backend: say which
    st.error(f"Cannot build this pipeline: {plain(exc)}")
    st.stop()

default_thr = course.config.recognition.threshold if course else None
default_thr = pipeline.threshold if default_thr is None else default_thr
# The threshold chosen for this course and model lives in its own session key, and the slider is
# set from it on every run. A slider alone would lose it: when a run stops before the slider (no
# image while a new one uploads), the browser drops the slider and redraws it at the default
# value later, while the server still holds the old value for matching (the slider showed 0.42,
# matching used 0.31).
thr_key = f"insp_thr_{course_id}_{pipeline.embedder.name}"
thr_kept = f"{thr_key}_kept"


def _keep_threshold() -> None:
    st.session_state[thr_kept] = st.session_state[thr_key]


st.session_state[thr_key] = float(st.session_state.get(thr_kept, round(default_thr, 2)))
whose = "the course's" if course and course.config.recognition.threshold is not None else "the model's"
threshold = sb.slider("Recognition threshold", 0.0, 1.0, step=0.01, key=thr_key, on_change=_keep_threshold,
                      help=f"Cosine similarity a face needs to be named; the default here is {default_thr:.2f} "
                           f"({whose}).")

gallery = stages.course_gallery(url, user, course.code, pipeline.embedder.name) if course else None
if course and gallery is None:
    st.warning(f"{plain(course.code)} has no enrolled faces for {pipeline.embedder.name} (the first session with this "
               "model re-embeds stored photos): matching is skipped.")

img_hash = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()
try:
    res = stages.run_staged(pipeline, image, gallery, threshold, img_hash)
except Exception as exc:  # noqa: BLE001
    st.error(f"The pipeline failed on this image: {plain(exc)}")
    st.stop()
result = res.as_pipeline_result()

# --- timings -----------------------------------------------------------------------------------
t = res.timings_ms
# one line (six metrics would stack into a screenful on a phone)
st.markdown("**Time per stage** " + " ".join(
    f":{'blue' if k == 'total' else 'gray'}-badge[{STAGE_LABEL[k]} {t.get(k, 0):.0f} ms]"
    for k in ["persons", "faces", "enhance", "embed", "match", "total"]))
st.caption(f"{plain(img_name)} · {image.shape[1]}×{image.shape[0]} · {len(res.persons)} persons · {len(res.faces)} faces · "
           f"model {res.model_name} · threshold {res.threshold:.2f} · stage times as measured when first computed "
           "(cached results are reused until a knob they depend on changes)")

advice = camera_advice(image.shape[1], np.minimum(res.faces.widths, res.faces.heights)) if len(res.faces) else None
if advice:
    st.info(advice, icon=":material/videocam:")

# --- frame ---------------------------------------------------------------------------------------
rows = result.face_rows()
# names next to ids on the boxes (a reviewer knows faces by name)
names = {r["student_id"]: r["name"] for r in course_service.roster(url, user, course.code).rows} if course else {}
labels = [f"#{r['face']} {box_label(str(r['student']), names.get(str(r['student']), ''), 12)}" if r.get("student")
          else f"#{r['face']}" for r in rows]
show_bgr(draw_detections(image, res.persons.xyxy if len(res.persons) else None, res.faces.xyxy,
                         list(res.faces.source), labels))
st.markdown("Face boxes by where they were found: " + " &nbsp; ".join(
    f"<span style='color:{c}'>■</span> {SOURCE_LABEL[s]}" for s, c in SOURCE_HEX.items())
    + " &nbsp; <span style='color:#a0a0a0'>■</span> person box", unsafe_allow_html=True)

# --- match table ------------------------------------------------------------------------------------
st.subheader("Faces and matches")
if rows:
    table = pd.DataFrame(rows)
    table["source"] = table["source"].map(lambda x: SOURCE_LABEL.get(x, x))
    if "student" in table:
        named = table["student"].notna()
        table["student"] = table["student"].where(named, "")  # "" rather than "None" for unknown faces
        table.insert(table.columns.get_loc("student") + 1, "name",
                     table["student"].map(lambda x: names.get(str(x), "") if x else ""))
        table["similarity"] = [f"{v:.2f}" if ok else "" for v, ok in zip(table["similarity"], named)]
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "face": st.column_config.NumberColumn("Face #", width="small"),
        "x1": st.column_config.NumberColumn("Left (px)", width="small"),
        "y1": st.column_config.NumberColumn("Top (px)", width="small"),
        "size_px": st.column_config.NumberColumn("Size (px)", width="small", help="The face box's shorter side"),
        "det_score": st.column_config.NumberColumn("Detector score", format="%.2f"),
        "source": st.column_config.TextColumn("Found"),
        "enhanced": st.column_config.CheckboxColumn("Enhanced"),
        "student": st.column_config.TextColumn("Student"),
        "name": st.column_config.TextColumn("Name"),
        "similarity": st.column_config.TextColumn("Similarity", help="Of the student the face was matched to"),
        **{f"top{k}": st.column_config.TextColumn(f"Candidate {k}") for k in range(1, 6)}})
else:
    st.caption("No faces found: lower the detection threshold or the minimum face size, or try the tiled flow.")

# --- crops -----------------------------------------------------------------------------------------
CROPS_PER_PAGE = 48  # a crowd photo at low thresholds finds hundreds of faces: one page at a time
if rows:
    st.subheader("Crops" + (" (original | enhanced)" if any(e is not None for e in res.crops.enhanced) else ""))
    part = page_slice(len(rows), CROPS_PER_PAGE, key=f"insp_crop_page_{img_hash}", label="Crops page")
    caps = [f"#{r['face']} · {r['size_px']} px · {SOURCE_LABEL.get(r['source'], r['source'])}"
            + (f" → {r['student']} {r['similarity']:.2f}" if r.get("student") else "") for r in rows]
    image_grid([(side_by_side(res.crops.crops[i], res.crops.enhanced[i], height=112), caps[i])
                for i in range(part.start, part.stop)])
    if len(rows) > 1 and res.match is not None:
        sims = pd.DataFrame({"face": [f"#{rows[i]['face']}" for i in range(part.start, part.stop)],
                             "best similarity": [float(res.match.top_similarity[i][0])
                                                 if len(res.match.top_similarity[i]) else 0.0
                                                 for i in range(part.start, part.stop)]})
        fig = px.bar(sims, x="face", y="best similarity", height=320,
                     title="Best similarity per face (top-1 candidate)"
                     + (f", faces {part.start + 1}–{part.stop}" if part.stop - part.start < len(rows) else ""))
        fig.update_xaxes(type="category", title=None)
        fig.update_yaxes(range=[0, 1], title="cosine similarity")
        fig.add_hline(y=res.threshold, line_dash="dash", annotation_text=f"threshold {res.threshold:.2f}")
        st.plotly_chart(fig, width="stretch")
