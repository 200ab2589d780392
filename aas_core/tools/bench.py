"""``aas bench``: per-stage median milliseconds on a 1920x1080 synthetic classroom snapshot.

For each profile (and a seed-faithful configuration: YOLO persons -> faces inside each
person -> super-resolution on EVERY face -> ArcFace, with models loaded once), in the same
run: median ms per stage over ``repeats`` runs after one warm-up run, faces found and
correctly named against the scene's ground truth. Plus gallery matching time: ``queries``
faces against ``gallery_size`` students x 5 samples.

``run_peer_bench`` (``aas bench --peers``): the AAS profiles against the InsightFace
``FaceAnalysis`` loop with the same weights (``tools.peers``), interleaved on the same
1080p and 4K scenes: median wall time, faces found, peer/AAS and 4K/1080p ratios.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from aas_core.config import PROJECT_ROOT, get_settings
from aas_core.media.decode import read_image
from aas_core.services.enrollment import find_enrollment_face
from aas_core.tools.synthetic import Scene, list_identities, make_scene, score_scene, scrfd_locator, seat_grid
from aas_core.vision.matching import Gallery
from aas_core.vision.nms import box_iou
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import PipelineConfig, resolve_profile


def default_dataset() -> Path:
    env = os.environ.get("AAS_BENCH_DATASET")
    if env:
        return Path(env)
    for cand in (PROJECT_ROOT.parent / "shared" / "data" / "faces_dev", PROJECT_ROOT / "data" / "faces_dev"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError("no labelled faces folder for the bench scene: pass --dataset DIR (DIR/<identity>/*.jpg)")


def seed_faithful(models_dir: Path) -> PipelineConfig:
    """What the seed did: YOLO persons, faces per person, SR on every face, ArcFace."""
    cfg, _ = resolve_profile("accurate", models_dir)
    return cfg.with_(flow="persons", sr_below_px=10**6, profile="seed-faithful")


def _gallery(pipe: Pipeline, ids: dict[str, list[Path]], people: list[str], k: int = 5) -> Gallery:
    settings = get_settings()
    gid, emb = [], []
    for p in people:
        for path in ids[p][:k]:
            img = read_image(path)
            face, _, _ = find_enrollment_face(img, pipe, settings)
            if face is not None:
                gid.append(p)
                emb.append(pipe.embedder.embed(img, face)[0])
    return Gallery(gid, np.stack(emb), pipe.embedder.name)


def bench_matching(gallery_size: int, queries: int = 40, dim: int = 512, samples: int = 5, runs: int = 30) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((gallery_size * samples, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = [f"S{i:05d}" for i in range(gallery_size) for _ in range(samples)]
    t0 = time.perf_counter()
    g = Gallery(ids, emb, "bench")
    build_ms = (time.perf_counter() - t0) * 1000
    q = emb[rng.choice(len(emb), queries, replace=False)] + 0.05 * rng.standard_normal((queries, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        g.match(q, threshold=0.5, model_name="bench")
        times.append((time.perf_counter() - t0) * 1000)
    return {"students": gallery_size, "samples_per_student": samples, "dim": dim, "queries": queries,
            "median_ms": statistics.median(times), "build_ms": round(build_ms, 1)}


def _bench_identities(ids: dict[str, list[Path]], rng: np.random.Generator, n_faces: int, dataset: Path) -> list[str]:
    """The scene's people: ``n_faces`` identities with a 6th photo (the first 5 are enrollment's)."""
    names = [n for n in rng.permutation(sorted(ids)) if len(ids[n]) > 5][:n_faces]
    if len(names) < n_faces:
        raise ValueError(f"{dataset} has only {len(names)} identities with > 5 photos; need {n_faces}")
    return names


def run_bench(models_dir: Path, *, dataset: Path | None = None, n_faces: int = 36, repeats: int = 3,
              gallery_size: int = 10_000, profiles: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
    models_dir = Path(models_dir)
    dataset = dataset or default_dataset()
    ids = list_identities(dataset)
    rng = np.random.default_rng(seed)
    names = _bench_identities(ids, rng, n_faces, dataset)
    scene = make_scene([(n, ids[n][5]) for n in names], scrfd_locator(models_dir), seed=seed,
                       seats=seat_grid(n_faces, rng=rng))
    configs: dict[str, PipelineConfig] = {}
    notes: dict[str, list[str]] = {}
    for p in profiles or ["fast", "accurate", "offline"]:
        configs[p], notes[p] = resolve_profile(p, models_dir)
    if not profiles or "seed-faithful" in profiles:
        configs["seed-faithful"] = seed_faithful(models_dir)
    out: dict[str, Any] = {"scene": f"1920x1080 synthetic classroom, {len(scene.faces)} faces "
                                    f"{min(f.size for f in scene.faces):.0f}-{max(f.size for f in scene.faces):.0f} px",
                           "faces_in_scene": len(scene.faces), "repeats": repeats, "cpu_count": os.cpu_count(),
                           "profiles": {}}
    for name, cfg in configs.items():
        pipe = Pipeline(cfg, models_dir)
        t0 = time.perf_counter()
        pipe.warm_up()
        load_ms = (time.perf_counter() - t0) * 1000
        gallery = _gallery(pipe, ids, names)
        runs = [pipe.run(scene.image, gallery) for _ in range(repeats + 1)][1:]  # first run = warm-up
        med = {k: statistics.median(r.timings_ms[k] for r in runs) for k in runs[0].timings_ms}
        last = runs[-1]
        sc = score_scene(scene, last.faces.xyxy, last.match.assigned if last.match else [], set(names))
        out["profiles"][name] = {"config": {k: v for k, v in cfg.__dict__.items() if v is not None},
                                 "notes": notes.get(name, []), "load_ms": round(load_ms, 1),
                                 "median_ms": {k: round(v, 1) for k, v in med.items()},
                                 "faces_found": sc.found, "named_correctly": sc.named_correctly,
                                 "named_wrongly": sc.named_wrongly}
    prof = out["profiles"]
    if "seed-faithful" in prof and "fast" in prof:
        out["ratios"] = {"seed-faithful / fast (total ms)":
                         prof["seed-faithful"]["median_ms"]["total"] / max(1e-9, prof["fast"]["median_ms"]["total"])}
    out["matching"] = bench_matching(gallery_size)
    return out


# --- against the InsightFace FaceAnalysis loop (`aas bench --peers`) -------------------------------

#: (name, (height, width), face px as labelled). Seats are drawn with the range narrowed by
#: seat_grid's +-5 % jitter, so the pasted faces stay inside the label; "1080p 34-104" is then
#: the scene of the plain ``aas bench`` (seat range 36-100).
PEER_SCENES: tuple[tuple[str, tuple[int, int], tuple[float, float]], ...] = (
    ("1080p 34-104", (1080, 1920), (34, 104)),
    ("1080p 24-60", (1080, 1920), (24, 60)),
    ("1080p 20-40", (1080, 1920), (20, 40)),
    ("1080p 20-100", (1080, 1920), (20, 100)),
    ("4K 40-120", (2160, 3840), (40, 120)),
    ("4K 20-100", (2160, 3840), (20, 100)),
)
#: Which 1080p scene each 4K scene's cost is compared with (same or nearest face sizes).
PEER_PAIRS: dict[str, str] = {"4K 40-120": "1080p 34-104", "4K 20-100": "1080p 20-100"}


def count_found(truth: np.ndarray, boxes: np.ndarray, iou: float = 0.5) -> tuple[int, int]:
    """(truth faces found, detections left over): one-to-one matching at IoU >= ``iou``,
    pairs taken greedily from the highest IoU down (a detection counts for one face at most)."""
    tb = np.asarray(truth, np.float32).reshape(-1, 4)
    db = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(tb) or not len(db):
        return 0, len(db)
    m = box_iou(tb, db)
    pairs = np.argwhere(m >= iou)
    order = np.argsort(-m[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_t: set[int] = set()
    used_d: set[int] = set()
    for i, j in pairs[order]:
        if i not in used_t and j not in used_d:
            used_t.add(int(i))
            used_d.add(int(j))
    return len(used_t), len(db) - len(used_d)


def peer_scenes(models_dir: Path, dataset: Path | None = None, n_faces: int = 36,
                scenes: tuple[tuple[str, tuple[int, int], tuple[float, float]], ...] = PEER_SCENES,
                seed: int = 0) -> list[tuple[str, Scene, int]]:
    """(name, scene, seed) per entry of ``scenes``: the same ``n_faces`` identities as ``aas bench``
    (each one's 6th photo), scene k drawn with seed ``seed + k``."""
    dataset = dataset or default_dataset()
    ids = list_identities(dataset)
    rng = np.random.default_rng(seed)
    names = _bench_identities(ids, rng, n_faces, dataset)
    locate = scrfd_locator(models_dir)
    out = []
    for k, (name, size, (lo, hi)) in enumerate(scenes):
        s = seed + k
        seats = seat_grid(n_faces, size=size, size_range=(lo / 0.95, hi / 1.05), rng=np.random.default_rng(s))
        out.append((name, make_scene([(n, ids[n][5]) for n in names], locate, size=size, seed=s, seats=seats), s))
    return out


def run_peer_bench(models_dir: Path, *, dataset: Path | None = None, n_faces: int = 36, repeats: int = 3,
                   profiles: list[str] | None = None, iou: float = 0.5, seed: int = 0,
                   peer_sizes: tuple[int, ...] = (640, 1280),
                   scenes: tuple[tuple[str, tuple[int, int], tuple[float, float]], ...] = PEER_SCENES,
                   pairs: dict[str, str] | None = None) -> dict[str, Any]:
    """AAS profiles against the FaceAnalysis loop (``tools.peers``) on the same scenes, interleaved.

    Models are loaded and every scene is drawn first. Round 0 runs every (scene, method) once
    (warm-up, discarded; it gives the face counts), then ``repeats`` rounds run every (scene,
    method) once each, in a new random order per round (fixed seed): a load change on a shared
    machine then spreads over all methods and scenes instead of biasing one ratio. Time = wall time of the whole call
    (``Pipeline.run`` without a gallery: nothing to match; the peer loop: detect + align +
    embed). Faces found: one-to-one against the scene's truth boxes at IoU >= ``iou``.
    ``pairs``: {4K scene: 1080p scene} whose cost ratio is reported (default ``PEER_PAIRS``).
    """
    from aas_core.tools.peers import peer_loops

    models_dir = Path(models_dir)
    methods: dict[str, Any] = {}
    notes: dict[str, list[str]] = {}
    for p in profiles or ["fast", "accurate", "offline"]:
        cfg, n = resolve_profile(p, models_dir)
        if cfg.profile != p:  # fell back to another profile: its weights are not here
            notes[p] = [*n, f"{p}: skipped (its models are not in {models_dir})"]
            continue
        pipe = Pipeline(cfg, models_dir)
        pipe.warm_up()
        methods[p], notes[p] = pipe, list(n)
    if not methods:
        raise ValueError("no AAS profile can run with the models present")
    aas_names = list(methods)
    peers = peer_loops(models_dir, peer_sizes)
    methods.update(peers)

    def call(m: Any, image: np.ndarray) -> tuple[float, np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        r = m.run(image)
        ms = (time.perf_counter() - t0) * 1000
        boxes = r.faces.xyxy if hasattr(r, "faces") else r.boxes
        return ms, boxes, dict(r.timings_ms)

    out: dict[str, Any] = {"repeats": repeats, "iou": iou, "cpu_count": os.cpu_count(), "aas": aas_names,
                           "peers": list(peers), "notes": {k: v for k, v in notes.items() if v}, "scenes": []}
    built = peer_scenes(models_dir, dataset, n_faces, scenes, seed)
    truths = [np.array([f.box for f in sc.faces], np.float32).reshape(-1, 4) for _, sc, _ in built]
    jobs = [(k, m) for k in range(len(built)) for m in methods]
    times: dict[tuple[int, str], list[float]] = {j: [] for j in jobs}
    stages: dict[tuple[int, str], list[dict[str, float]]] = {j: [] for j in jobs}
    found: dict[tuple[int, str], tuple[int, int]] = {}
    shuffle = np.random.default_rng(seed)
    for rnd in range(repeats + 1):
        for i in shuffle.permutation(len(jobs)):
            k, m = jobs[i]
            ms, boxes, st = call(methods[m], built[k][1].image)
            if rnd == 0:
                found[(k, m)] = count_found(truths[k], boxes, iou)  # deterministic: one count per method
                continue
            times[(k, m)].append(ms)
            stages[(k, m)].append(st)
    for k, (name, scene, s) in enumerate(built):
        h, w = scene.image.shape[:2]
        sizes = [f.size for f in scene.faces]
        entry: dict[str, Any] = {"scene": name, "width": w, "height": h, "seed": s, "faces_in_scene": len(scene.faces),
                                 "face_px": [round(min(sizes)), round(max(sizes))] if sizes else None, "methods": {}}
        for m in methods:
            t, st = times[(k, m)], stages[(k, m)]
            entry["methods"][m] = {
                "median_ms": round(statistics.median(t), 1), "runs_ms": [round(x, 1) for x in t],
                "stages_ms": {n: round(statistics.median(x[n] for x in st), 1) for n in st[0]},
                "found": found[(k, m)][0], "extra": found[(k, m)][1]}
        entry["ratios"] = {f"{p} / {a}": round(entry["methods"][p]["median_ms"] / max(1e-9, entry["methods"][a]["median_ms"]), 2)
                           for a in aas_names for p in peers}
        # The most any detection schedule could give with the same embedder: the peer's whole call
        # over the AAS embedding stage alone (both embed the same faces with the same model).
        entry["ceilings"] = {f"{p} / {a}": round(entry["methods"][p]["median_ms"]
                                                 / max(1e-9, entry["methods"][a]["stages_ms"]["embed"]), 2)
                             for a in aas_names for p in peers
                             if entry["methods"][a]["stages_ms"].get("embed", 0) > 0}
        out["scenes"].append(entry)
    by_name = {e["scene"]: e for e in out["scenes"]}
    out["cost_4k_over_1080p"] = [
        {"scene": big, "vs": small, "ratios": {m: round(by_name[big]["methods"][m]["median_ms"]
                                                       / max(1e-9, by_name[small]["methods"][m]["median_ms"]), 2)
                                               for m in methods}}
        for big, small in (PEER_PAIRS if pairs is None else pairs).items() if big in by_name and small in by_name]
    return out


def peer_text(r: dict[str, Any]) -> str:
    """The ``--peers`` report as plain-text tables (one block per scene)."""
    lines = [(f"median wall ms over {r['repeats']} interleaved repeats after a warm-up; "
              f"found = truth faces matched at IoU >= {r['iou']} (extra = other detections); cpus {r['cpu_count']}")]
    for note in (x for v in r.get("notes", {}).values() for x in v):
        lines.append(f"note: {note}")
    for e in r["scenes"]:
        lines.append("")
        lines.append(f"{e['scene']}: {e['width']}x{e['height']}, {e['faces_in_scene']} faces "
                     f"{e['face_px'][0]}-{e['face_px'][1]} px (seed {e['seed']})")
        w = max(len(m) for m in e["methods"]) + 2
        for m, v in e["methods"].items():
            st = ", ".join(f"{k} {x:.0f}" for k, x in v.get("stages_ms", {}).items() if k != "total" and x >= 0.5)
            lines.append(f"  {m:<{w}}{v['median_ms']:>9.0f} ms   found {v['found']:>2}/{e['faces_in_scene']}  "
                         f"extra {v['extra']}   ({st})")
        lines.append("  peer / AAS (> 1: AAS faster): " + ", ".join(f"{k} {v:.2f}x" for k, v in e["ratios"].items()))
        if e.get("ceilings"):
            lines.append("  ceiling, AAS detection free (peer / AAS embed stage): "
                         + ", ".join(f"{k} {v:.2f}x" for k, v in e["ceilings"].items()))
    for c in r.get("cost_4k_over_1080p", []):
        lines.append("")
        lines.append(f"{c['scene']} / {c['vs']} cost: " + ", ".join(f"{m} {v:.2f}x" for m, v in c["ratios"].items()))
    return "\n".join(lines)
