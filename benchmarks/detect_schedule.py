"""Detection schedule vs 640 px tiles vs a FaceAnalysis-style single pass, side by side.

    .venv/bin/python benchmarks/detect_schedule.py [--repeats 5] [--scenes A B E] [--json]
    .venv/bin/python benchmarks/detect_schedule.py --ort      # ONNX Runtime session options, side by side

Synthetic classrooms (36 faces each from ../shared/data/faces_dev, `tools.synthetic`):

    A 1920x1080 faces 34-104 px   B 1920x1080 24-60   C 1920x1080 20-40   D 1920x1080 20-100
    E 3840x2160 faces 40-120 px   F 3840x2160 20-100

Methods, all on the same weights (SCRFD 2.5g, mobilefacenet), one whole snapshot each:

* ``tiled``    — the fast profile with the old flow: 640x640 full-frame pass + 640 px tiles
                 at 25 % overlap, CLAHE, one embedding batch, match.
* ``schedule`` — the fast profile as shipped: the detection schedule
                 (`flows.detect_faces_scheduled`), CLAHE, one embedding batch, match.
* ``schedule-int8`` — the same with the int8 copies of both models (``scrfd_2.5g_int8.onnx``,
                 ``mobilefacenet_int8.onnx`` from ``benchmarks/quantization.py``; ``--int8-dir``),
                 i.e. the fast profile once they are installed in the models folder.
* ``fa1280``   — what a plain InsightFace FaceAnalysis loop does: SCRFD letterboxed into
                 1280x1280 (det_size 1280), then ``norm_crop`` + one ArcFace inference per
                 face; no enhancement, no matching (our own SCRFD backend at input 1280).

Timings are interleaved (every repeat runs every method on every scene, in turn) and
reported as medians; on a shared machine only the ratios taken in one run mean much.
"Found" = true faces matched by a detection at IoU >= 0.5 (`synthetic.score_scene`);
"named" = found faces given their own identity (gallery: each identity's first photo).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from aas_core.config import PROJECT_ROOT
from aas_core.media.decode import read_image
from aas_core.tools.synthetic import list_identities, make_scene, score_scene, scrfd_locator, seat_grid
from aas_core.vision.faces.scrfd import ScrfdFaceDetector
from aas_core.vision.matching import Gallery
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import resolve_profile

SCENES = {
    "A": ((1080, 1920), (34, 104)),
    "B": ((1080, 1920), (24, 60)),
    "C": ((1080, 1920), (20, 40)),
    "D": ((1080, 1920), (20, 100)),
    "E": ((2160, 3840), (40, 120)),
    "F": ((2160, 3840), (20, 100)),
}


def build_scene(ids: dict[str, list[Path]], locate, size, size_range, seed: int = 1, n: int = 36):
    keys = sorted(ids)
    rng = np.random.default_rng(seed)
    chosen = [keys[i] for i in rng.permutation(len(keys))[:n]]
    faces = [(k, ids[k][-1]) for k in chosen]
    seats = seat_grid(n, size=size, size_range=size_range, rng=np.random.default_rng(seed))
    return make_scene(faces, locate, size=size, seats=seats, seed=seed)


class FaceAnalysisLike:
    """SCRFD at det_size 1280 (letterboxed square), then norm_crop + ArcFace face by face."""

    def __init__(self, models_dir: Path, embedder) -> None:
        self.det = ScrfdFaceDetector(models_dir / "scrfd_2.5g.onnx", input_size=(1280, 1280))
        self.emb = embedder

    def run(self, image: np.ndarray):
        faces = self.det.detect(image, 0.5)
        embs = [self.emb.embed_aligned(self.emb.align(image, faces[i])) for i in range(len(faces))]
        return faces, embs


def ort_options(models_dir: Path, repeats: int) -> None:
    """SCRFD at 1152x672 and one mobilefacenet batch of 36 under each session-option variant."""
    import onnxruntime as ort

    from aas_core.vision._backend_utils import session_options

    def variant(**kw):
        so = session_options(kw.pop("threads", None))
        for k, v in kw.items():
            if k == "spinning":
                so.add_session_config_entry("session.intra_op.allow_spinning", "1")
            else:
                setattr(so, k, v)
        return so

    variants = {"kept": {}, "ORT_ENABLE_EXTENDED": {"graph_optimization_level": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED},
                "no memory pattern": {"enable_mem_pattern": False}, "no arena": {"enable_cpu_mem_arena": False},
                "spinning": {"spinning": True}, "1 thread": {"threads": 1}}
    rng = np.random.default_rng(0)
    for f, x in (("scrfd_2.5g.onnx", rng.standard_normal((1, 3, 672, 1152)).astype(np.float32)),
                 ("mobilefacenet.onnx", rng.standard_normal((36, 3, 112, 112)).astype(np.float32))):
        sess = {k: ort.InferenceSession(str(models_dir / f), variant(**dict(kw)), providers=["CPUExecutionProvider"])
                for k, kw in variants.items()}
        name = sess["kept"].get_inputs()[0].name
        t: dict[str, list[float]] = {k: [] for k in sess}
        for s in sess.values():
            s.run(None, {name: x})
        for _ in range(repeats):
            for k, s in sess.items():
                t0 = time.perf_counter()
                s.run(None, {name: x})
                t[k].append((time.perf_counter() - t0) * 1000)
        base = statistics.median(t["kept"])
        print(f, ", ".join(f"{k}: {statistics.median(v):.0f} ms ({base / statistics.median(v):.2f}x)" for k, v in t.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "models")
    ap.add_argument("--dataset", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "faces_dev")
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    ap.add_argument("--methods", nargs="+", default=["tiled", "schedule", "schedule-int8", "fa1280"])
    ap.add_argument("--int8-dir", type=Path, default=PROJECT_ROOT / "data" / "models-int8",
                    help="where benchmarks/quantization.py wrote *_int8.onnx (schedule-int8 is skipped without them)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ort", action="store_true", help="only compare ONNX Runtime session options")
    a = ap.parse_args()
    if a.ort:
        ort_options(a.models_dir, max(a.repeats, 9))
        return

    cfg, _ = resolve_profile("fast", a.models_dir)
    pipes = {"schedule": Pipeline(cfg, a.models_dir), "tiled": Pipeline(cfg.with_(flow="tiled"), a.models_dir)}
    q_det, q_emb = a.int8_dir / "scrfd_2.5g_int8.onnx", a.int8_dir / "mobilefacenet_int8.onnx"
    if q_det.is_file() and q_emb.is_file():
        pipes["schedule-int8"] = Pipeline(cfg.with_(face_model=str(q_det.resolve()), embed_model=str(q_emb.resolve())),
                                          a.models_dir)
    elif "schedule-int8" in a.methods:
        print(f"no int8 models in {a.int8_dir} (run benchmarks/quantization.py): schedule-int8 skipped")
        a.methods.remove("schedule-int8")
    emb = pipes["schedule"].embedder
    fa = FaceAnalysisLike(a.models_dir, emb)

    ids = list_identities(a.dataset)
    galleries = {}
    for m, p in pipes.items():  # each embedder enrolls each identity's first photo
        g_ids, g_embs = [], []
        for ident, paths in ids.items():
            img = read_image(paths[0])
            f = fa.det.detect(img, 0.5)
            if len(f):
                g_ids.append(ident)
                g_embs.append(p.embedder.embed(img, f[int(np.argmax(f.area))])[0])
        galleries[m] = Gallery(g_ids, np.stack(g_embs), p.embedder.name)
    locate = scrfd_locator(a.models_dir)
    scenes = {k: build_scene(ids, locate, *SCENES[k], seed=a.seed) for k in a.scenes}

    def run(method: str, scene):
        t0 = time.perf_counter()
        if method == "fa1280":
            faces, _ = fa.run(scene.image)
            total = (time.perf_counter() - t0) * 1000
            return total, total, faces.xyxy, [None] * len(faces)
        r = pipes[method].run(scene.image, galleries[method])
        total = (time.perf_counter() - t0) * 1000
        return total, r.timings_ms["faces"], r.faces.xyxy, r.match.assigned

    times: dict[tuple[str, str], list[float]] = {}
    det_ms: dict[tuple[str, str], list[float]] = {}
    quality: dict[tuple[str, str], tuple[int, int, int]] = {}
    for k, sc in scenes.items():  # warm-up: sessions, caches
        for m in a.methods:
            run(m, sc)
    for _ in range(a.repeats):
        for k, sc in scenes.items():
            for m in a.methods:
                total, dms, boxes, assigned = run(m, sc)
                times.setdefault((k, m), []).append(total)
                det_ms.setdefault((k, m), []).append(dms)
                s = score_scene(sc, boxes, assigned, set(ids), iou=0.5)
                quality[(k, m)] = (s.found, s.faces, s.named_correctly)

    rows = []
    for k in scenes:
        (h, w), (lo, hi) = SCENES[k]
        for m in a.methods:
            found, n, named = quality[(k, m)]
            rows.append({"scene": k, "frame": f"{w}x{h}", "faces_px": f"{lo}-{hi}", "method": m,
                         "total_ms": statistics.median(times[(k, m)]), "detect_ms": statistics.median(det_ms[(k, m)]),
                         "found": found, "faces": n, "named": named if m != "fa1280" else None})
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print("| scene | frame | faces px | method | total ms | detect ms | found | named |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        named = "–" if r["named"] is None else r["named"]
        print(f"| {r['scene']} | {r['frame']} | {r['faces_px']} | {r['method']} | {r['total_ms']:.0f} | "
              f"{r['detect_ms']:.0f} | {r['found']}/{r['faces']} | {named} |")
    med = {(r["scene"], r["method"]): r["total_ms"] for r in rows}
    print()
    for k in scenes:
        parts = []
        for mine in ("schedule", "schedule-int8"):
            for other in ("fa1280", "tiled"):
                if mine in a.methods and other in a.methods:
                    parts.append(f"{other}/{mine} = {med[(k, other)] / med[(k, mine)]:.2f}x")
        print(f"scene {k}: " + ", ".join(parts))
    for big, small in (("E", "A"), ("F", "D")):
        if big in scenes and small in scenes:
            for m in a.methods:
                print(f"{m}: 4K {big} / 1080p {small} = {med[(big, m)] / med[(small, m)]:.2f}x")


if __name__ == "__main__":
    main()
