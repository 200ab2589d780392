"""Evaluation: recognition accuracy on a labelled folder per model; ROC/DET curves and score
histograms with the chosen threshold; apply that threshold to a course."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from aas_core.config import PROJECT_ROOT
from aas_core.db.models import Role
from aas_core.domain.course_config import RecognitionConfig
from aas_core.services import courses as course_service
from aas_core.tools.curves import eer, rates_at, roc
from aas_core.services import evaluation
from aas_core.tools.evaluation import EVAL_BACKENDS, EvalReport, evaluate_folder, trust_notes
from aas_core.ui.auth import require_user
from aas_core.ui.text import plain
from aas_core.ui.resources import database_url, models_dir
from aas_core.ui.widgets import flash, show_flashes

user = require_user(Role.INSTRUCTOR)
show_flashes()
url = database_url()
st.title(":material/science: Evaluation")
st.caption("How well each model recognises the people in a labelled set of photos. A share of the identities "
           "is held back as strangers; the others enroll their first K photos and are probed with the rest — the "
           "same matching the product uses.")

def _default_dir() -> str:
    """AAS_EVAL_DIR, else the development faces next to the checkout, when that folder exists."""
    for candidate in (os.environ.get("AAS_EVAL_DIR"), str(PROJECT_ROOT.parent / "shared" / "data" / "faces_dev")):
        if candidate and Path(candidate).is_dir():
            return candidate
    return ""


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_evaluation(folder: Path, backend: str, mdir: Path, **kw) -> EvalReport:  # type: ignore[no-untyped-def]
    """The evaluation itself, cached by its inputs (the access check runs before, in the service)."""
    return evaluate_folder(folder, backend, mdir, **kw)


with st.form("eval_form"):
    if user.is_admin:
        folder = st.text_input("Labelled folder on the server (DIR/<identity>/*.jpg)", value=_default_dir(),
                               key="eval_dir")
        upload = None
    else:
        folder = ""
        upload = st.file_uploader("Labelled photos: a zip with one folder per person (<identity>/<photo>.jpg)",
                                  type=["zip"], key="eval_zip")
    c1, c2, c3, c4 = st.columns(4)
    chosen = c1.multiselect("Models", list(EVAL_BACKENDS), default=["arcface"], key="eval_backends")
    enroll_k = c2.number_input("Enrollment photos per identity (K)", 1, 20, 5, key="eval_k")
    strangers = c3.slider("Strangers (share of identities)", 0.0, 0.5, 0.2, 0.05, key="eval_strangers")
    seed = c4.number_input("Seed", 0, 10_000, 0, key="eval_seed")
    run = st.form_submit_button("Run evaluation", type="primary")

if run:
    source = upload.name if upload is not None else folder.strip()
    if not source:
        st.error("Upload a zip of labelled photos." if not user.is_admin else "Give a folder on the server.")
    elif not chosen:
        st.error("Choose at least one model.")
    else:
        results: dict[str, EvalReport] = {}
        problems: list[str] = []
        with st.status(f"Evaluating {len(chosen)} model(s) on {plain(Path(source).name)}…", expanded=True) as status:
            for b in chosen:
                st.write(f"**{b}** …")
                try:
                    kw = {"enroll_k": int(enroll_k), "stranger_fraction": float(strangers), "seed": int(seed)}
                    results[b] = (evaluation.evaluate_upload(user, upload.getvalue(), b, models_dir(), **kw)
                                  if upload is not None else
                                  evaluation.evaluate_server_folder(user, Path(folder), b, models_dir(),
                                                                    run=_cached_evaluation, **kw))
                    st.write(results[b].text())
                except (FileNotFoundError, ValueError, ImportError, PermissionError) as exc:
                    problems.append(f"{b}: {exc}")
            status.update(label=f"Evaluated {len(results)} model(s)", state="complete" if results else "error",
                          expanded=False)
        for problem in problems:  # outside the status box, which closes: the reason must stay in view
            st.error(plain(problem))
        st.session_state["eval_results"] = {"folder": source, "reports": results}

state = st.session_state.get("eval_results")
if not state or not state["reports"]:
    st.info("Run an evaluation to see accuracy, ROC/DET curves and score distributions.")
    st.stop()

reports: dict[str, EvalReport] = state["reports"]
st.subheader("Summary")
table = []
for b, r in reports.items():
    e, e_thr = eer(r.genuine, r.impostor)
    table.append({"model": b, "embedder": r.model, "detector": r.detector, "rank-1": r.rank1,
                  "TAR@FAR1e-2": r.tar_at_far.get("1e-2"), "TAR@FAR1e-3": r.tar_at_far.get("1e-3"), "EER": e,
                  "threshold": r.threshold, "open-set id": r.open_set_identification,
                  "strangers rejected": r.stranger_rejection, "failed to detect": f"{r.failed_to_detect}/{r.images}",
                  "genuine pairs": int(r.genuine.size), "impostor pairs": int(r.impostor.size),
                  "ms/image": r.ms_per_image})
for b, r in reports.items():
    for note in trust_notes(int(r.genuine.size), int(r.impostor.size)):
        st.warning(f"**{b}**: {note}", icon=":material/warning:")
st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch",
             column_config={k: st.column_config.NumberColumn(format="%.3f") for k in
                            ["rank-1", "TAR@FAR1e-2", "TAR@FAR1e-3", "EER", "threshold", "open-set id",
                             "strangers rejected"]})

st.subheader("Threshold")
which = st.selectbox("Model", list(reports), key="eval_model")
rep = reports[which]
thr = st.slider("Threshold", 0.0, 1.0, float(round(rep.threshold, 2)), 0.01, key=f"eval_thr_{which}")
tar, far = rates_at(rep.genuine, rep.impostor, thr)
m1, m2, m3 = st.columns(3)
m1.metric("Genuine accepted (TAR)", f"{tar:.1%}")
m2.metric("Impostors accepted (FAR)", f"{far:.2%}")
m3.metric("Model default", f"{rep.threshold:.2f}")

palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"]
FLOOR = 1e-4  # log axes: rates of 0 (nothing observed) are drawn at this floor
c1, c2 = st.columns(2)
roc_fig, det_fig = go.Figure(), go.Figure()
for i, (b, r) in enumerate(reports.items()):
    cur = roc(r.genuine, r.impostor)
    col = palette[i % len(palette)]
    roc_fig.add_trace(go.Scatter(x=np.clip(cur.far, FLOOR, 1), y=cur.tar, name=b, line={"color": col}))
    det_fig.add_trace(go.Scatter(x=np.clip(cur.far, FLOOR, 1), y=np.clip(cur.frr, FLOOR, 1), name=b,
                                 line={"color": col}))
    at = thr if b == which else r.threshold
    t_, f_ = rates_at(r.genuine, r.impostor, at)
    marker = {"color": col, "size": 12, "symbol": "x"}
    roc_fig.add_trace(go.Scatter(x=[max(f_, FLOOR)], y=[t_], mode="markers", marker=marker, showlegend=False,
                                 hovertext=f"{b} @ {at:.2f}: TAR {t_:.3f}, FAR {f_:.4f}"))
    det_fig.add_trace(go.Scatter(x=[max(f_, FLOOR)], y=[max(1 - t_, FLOOR)], mode="markers", marker=marker,
                                 showlegend=False, hovertext=f"{b} @ {at:.2f}"))
log_axis = {"type": "log", "range": [-4.1, 0.05], "exponentformat": "power", "dtick": 1}
roc_fig.update_layout(title="ROC (× = chosen threshold)", xaxis={"title": "false accept rate", **log_axis},
                      yaxis={"title": "true accept rate", "range": [0, 1.02]}, height=380)
det_fig.update_layout(title="DET (lower left is better)", xaxis={"title": "false accept rate", **log_axis},
                      yaxis={"title": "false reject rate", **log_axis}, height=380)
c1.plotly_chart(roc_fig, width="stretch")
c2.plotly_chart(det_fig, width="stretch")
st.caption(f"Rates of 0 (no error observed among {len(rep.genuine)} genuine and {len(rep.impostor)} impostor pairs) "
           f"are drawn at {FLOOR:g}.")

hist = go.Figure()
hist.add_trace(go.Histogram(x=rep.genuine, name="genuine (same person)", opacity=0.65, marker_color="#16a34a",
                            histnorm="probability density", nbinsx=50))
hist.add_trace(go.Histogram(x=rep.impostor, name="impostor (different people)", opacity=0.65, marker_color="#dc2626",
                            histnorm="probability density", nbinsx=50))
hist.add_vline(x=thr, line_dash="dash", annotation_text=f"threshold {thr:.2f}")
hist.update_layout(barmode="overlay", title=f"{which}: score distributions", xaxis_title="cosine similarity")
st.plotly_chart(hist, width="stretch")

# --- apply to a course -----------------------------------------------------------------------------
st.subheader("Apply this threshold")
courses = course_service.list_courses(url, user)
if not courses:
    st.caption("No course to apply it to.")
else:
    codes = [c.code for c in courses]
    a, b = st.columns([2, 1])
    code = a.selectbox("Course", codes, key="eval_course")
    if b.button(f"Apply {thr:.2f} to {code}", type="primary", key="eval_apply"):
        current = next(c for c in courses if c.code == code).config
        course_service.update_config(url, user, code, config=current.with_values(recognition=RecognitionConfig(
            threshold=round(float(thr), 4), model=rep.model,
            source=f"evaluation {which} on {Path(state['folder']).name}, {date.today():%Y-%m-%d}")))
        flash(f"{code}: recognition threshold set to {thr:.2f} ({rep.model})")
        st.rerun()
