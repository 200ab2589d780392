"""Upper-face matching for faces hidden from below, measured face by face (single frames).

    .venv/bin/python benchmarks/upper_face.py [--models-dir data/models-mbf] [--cut 78]

A head in the row in front hides a student's chin and mouth (``crowded_rows`` in
``aas_core/tools/lecture_hall.py``). The lever: a second gallery whose portraits and
classroom templates are embedded with the aligned face's rows from ``--cut`` down (of 112:
78 = just under the nose) set to grey, probes embedded the same way, matched with a threshold of
its own set above every unknown person's best score on the calibration seeds (crowded_rows and
lecture_hall, seeds 11-14: strangers, and enrolled faces scored without their own student);
a face the product's matching leaves unknown is named when its upper-face score passes that
threshold. Reported on seeds 1-3 of both rooms, frame 0 of each snapshot: faces named rightly,
wrongly, strangers named, unknown-classmate probes named, product alone vs product + upper face.
Scratch tooling of ``benchmarks/recognition_levers.py`` (its probes and per-student scores).
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import recognition_levers as RL  # noqa: E402
from aas_core.config import get_settings  # noqa: E402
from aas_core.media.decode import read_image  # noqa: E402
from aas_core.services.enrollment import find_enrollment_face  # noqa: E402
from aas_core.tools.bench import default_dataset  # noqa: E402
from aas_core.tools.lecture_hall import CONDITIONS, make_hard_session  # noqa: E402
from aas_core.tools.synthetic import scrfd_locator  # noqa: E402
from aas_core.vision.pipeline import Pipeline  # noqa: E402
from aas_core.vision.profiles import resolve_profile  # noqa: E402
from aas_core.vision.templates import classroom_embeddings, classroom_scale  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "models")
ap.add_argument("--cut", type=int, default=78, help="first masked row of the 112 px aligned face")
a = ap.parse_args()
CUT = a.cut
md = a.models_dir
cfg, _ = resolve_profile("fast", md)
pipe = Pipeline(cfg, md)
pipe.warm_up()
T = pipe.threshold
SC = classroom_scale(pipe.embedder.name)
if SC is None:
    raise SystemExit(f"{pipe.embedder.name} has no calibrated classroom scale")
locate = scrfd_locator(md)
ds = default_dataset()

@contextmanager
def mask_lower(on=True):
    emb = pipe.embedder; run = emb._run
    if not on:
        yield; return
    def masked(b):
        b = np.array(b, copy=True); b[:, CUT:, :, :] = 127.5 if b.dtype != np.uint8 else 128
        return run(b)
    emb._run = masked
    try: yield
    finally: emb._run = run

_orig = RL.embed_with
def embed_with(p, lever, image, faces, sr=None):
    if lever == "upper":
        with mask_lower():
            return p.embed(image, faces, p.crop_faces(image, faces))
    return _orig(p, lever, image, faces, sr)
RL.embed_with = embed_with

cache = {}
def gallery_of(path, upper):
    key = (str(path), upper)
    if key not in cache:
        img = read_image(path); face, _, _ = find_enrollment_face(img, pipe, get_settings())
        with mask_lower(upper):
            cache[key] = None if face is None else (pipe.embedder.embed(img, face)[0], classroom_embeddings(pipe, img, face))
    return cache[key]

def scores(hs, probes, lever, upper):
    students = sorted(hs.enroll); pid, pe, cid, ce = [], [], [], []
    for s in students:
        for p in hs.enroll[s]:
            g = gallery_of(p, upper)
            if g is None: continue
            pid.append(s); pe.append(g[0]); cid += [s]*len(g[1]); ce.append(g[1])
    q = np.stack([p.emb[lever] for p in probes])
    P = RL.per_student_max(q, pid, np.stack(pe), students); C = RL.per_student_max(q, cid, np.concatenate(ce), students)
    return students, np.maximum(P, C * SC)

def run(cond, seeds):
    rows = []
    for seed in seeds:
        hs = make_hard_session(ds, locate, CONDITIONS[cond], seed=seed, burst=1)
        probes = RL.session_probes(hs, pipe, ["base", "upper"], 1, None)
        st, B = scores(hs, probes, "base", False); _, U = scores(hs, probes, "upper", True)
        for i, p in enumerate(probes):
            rows.append((cond, seed, p.identity, p.identity in hs.enroll, st, B[i], U[i]))
    return rows

def imp(rows, which):
    out = []
    for c, s, ident, enr, st, B, U in rows:
        x = B if which == "B" else U
        if enr: out.append(np.delete(x, st.index(ident)).max())
        else: out.append(x.max())
    return np.array(out)

t0 = time.time()
cal = run("crowded_rows", [11, 12, 13, 14]) + run("lecture_hall", [11, 12, 13, 14])
ib, iu = imp(cal, "B"), imp(cal, "U")
print(f"calib unknown-best: base p99 {np.quantile(ib,.99):.3f} max {ib.max():.3f}; upper p99 {np.quantile(iu,.99):.3f} max {iu.max():.3f}; {time.time()-t0:.0f}s", flush=True)
TU = max(float(iu.max()) + 0.005, float(np.quantile(iu, 0.99)) * T / float(np.quantile(ib, 0.99)))
print(f"upper threshold (above every calibration unknown best) {TU:.3f}", flush=True)
ev = run("crowded_rows", [1, 2, 3]) + run("lecture_hall", [1, 2, 3])
for name, rs in [("calib", cal), ("eval 1-3", ev)]:
    r = {"base": [0, 0, 0, 0], "either": [0, 0, 0, 0]}; n = 0
    for c, s, ident, enr, st, B, U in rs:
        nb = st[int(B.argmax())] if B.max() >= T else None
        nu = st[int(U.argmax())] if U.max() >= TU else None
        ne = nb if nb is not None else nu
        loo_b = np.delete(B, st.index(ident)).max() >= T if enr else False
        loo_u = np.delete(U, st.index(ident)).max() >= TU if enr else False
        for k, who, loo in (("base", nb, loo_b), ("either", ne, loo_b or loo_u)):
            if enr:
                r[k][0] += who == ident; r[k][1] += who is not None and who != ident; r[k][3] += int(loo)
            else:
                r[k][2] += who is not None
        n += enr
    print(f"{name}: {n} enrolled faces | product: right {r['base'][0]}, wrong {r['base'][1]}, strangers named {r['base'][2]}, "
          f"unknown classmates named {r['base'][3]} | + upper face: right {r['either'][0]}, wrong {r['either'][1]}, "
          f"strangers named {r['either'][2]}, unknown classmates named {r['either'][3]}", flush=True)
