"""``aas bench``: per-stage median milliseconds on a 1920x1080 synthetic classroom snapshot.

For each profile (and a seed-faithful configuration: YOLO persons -> faces inside each
person -> super-resolution on EVERY face -> ArcFace, with models loaded once), in the same
run: median ms per stage over ``repeats`` runs after one warm-up run, faces found and
correctly named against the scene's ground truth. Plus gallery matching time: ``queries``
faces against ``gallery_size`` students x 5 samples.
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
from aas_core.tools.synthetic import list_identities, make_scene, score_scene, scrfd_locator, seat_grid
from aas_core.vision.matching import Gallery
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


def run_bench(models_dir: Path, *, dataset: Path | None = None, n_faces: int = 36, repeats: int = 3,
              gallery_size: int = 10_000, profiles: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
    models_dir = Path(models_dir)
    dataset = dataset or default_dataset()
    ids = list_identities(dataset)
    rng = np.random.default_rng(seed)
    names = [n for n in rng.permutation(sorted(ids)) if len(ids[n]) > 5][:n_faces]
    if len(names) < n_faces:
        raise ValueError(f"{dataset} has only {len(names)} identities with > 5 photos; need {n_faces}")
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
