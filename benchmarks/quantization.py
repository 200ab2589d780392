"""int8 quantisation of the fast profile's models (SCRFD 2.5g, mobilefacenet): speed and accuracy.

    .venv/bin/python benchmarks/quantization.py [--out data/models-int8] [--repeats 15] [--skip-eval]
    .venv/bin/python benchmarks/quantization.py --skip-eval --install MODELS_DIR   # for the fast profile

Writes quantised copies to ``--out`` (git-ignored: ``data/`` and ``*.onnx``; generated, never
committed) with onnxruntime.quantization, after ``quant_pre_process`` (shape inference +
graph optimisation):

* ``<model>_dyn.onnx`` — ``quantize_dynamic`` (int8 weights, activations quantised at run time);
* ``<model>_qdq.onnx`` — ``quantize_static``, QDQ format, per-channel int8 weights, uint8
  activations calibrated (MinMax) on a small calibration set from faces_dev: aligned faces
  (2 photos per identity) for the embedder, synthetic classroom frames for the detector.

Then, interleaved with the fp32 originals: median ms for one embedding batch of 36 faces and
for one detector pass on a 1920x1080 classroom at the detection schedule's scale (0.6);
cosine agreement of int8 with fp32 embeddings; `aas eval faces` figures (rank-1, TAR@FAR,
open-set identification) with the int8 embedder; faces found by the int8 detector.

The QDQ files are also written as ``scrfd_2.5g_int8.onnx`` / ``mobilefacenet_int8.onnx``;
``--install DIR`` copies those two into a models folder. Installations make theirs with
``aas models quantize --photos DIR`` (``vision/quantize.py``, the same quantiser, calibrated on
their own photos and checked against fp32 before it installs anything); the ``fast`` profile
prefers the copies (``vision/profiles.py``). The int8 embedder has its own model name, so
rosters are re-embedded on the next session start, as after any model change.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from aas_core.config import PROJECT_ROOT
from aas_core.media.decode import read_image
from aas_core.tools import evaluation
from aas_core.tools.synthetic import list_identities, make_scene, score_scene, scrfd_locator, seat_grid
from aas_core.vision.embed.arcface_onnx import ArcFaceOnnxEmbedder
from aas_core.vision.faces.scrfd import ScrfdFaceDetector
from aas_core.vision import quantize
from aas_core.vision.profiles import PipelineConfig


def _quantize(src: Path, out_dir: Path, inputs: list[np.ndarray], input_name: str) -> dict[str, Path]:
    """fp32, dynamic and static (QDQ) versions of ``src`` (the product's quantiser: ``vision.quantize``)."""
    out_dir = out_dir.resolve()
    return {"fp32": src, "dyn": quantize.quantize_dynamic(src, out_dir / f"{src.stem}_dyn.onnx"),
            "qdq": quantize.quantize_static(src, out_dir / f"{src.stem}_qdq.onnx", input_name, inputs)}


def _timeit(fns: dict[str, callable], repeats: int) -> dict[str, float]:
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t0) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "models")
    ap.add_argument("--dataset", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "faces_dev")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "data" / "models-int8")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--skip-eval", action="store_true", help="timings and agreement only, no `aas eval faces` run")
    ap.add_argument("--install", type=Path, default=None,
                    help="copy the QDQ models as *_int8.onnx into this models folder (the fast profile prefers them)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    ids = list_identities(a.dataset)

    # --- embedder -------------------------------------------------------------------------
    det = ScrfdFaceDetector(a.models_dir / "scrfd_2.5g.onnx")
    emb = ArcFaceOnnxEmbedder(a.models_dir / "mobilefacenet.onnx")
    aligned = []
    for paths in ids.values():
        for p in paths[:2]:
            img = read_image(p)
            f = det.detect(img, 0.5)
            if len(f):
                aligned.append(emb.align(img, f[int(np.argmax(f.area))])[0])
    aligned = np.stack(aligned)

    files = _quantize(emb.model_path, a.out, [quantize.embedder_input(emb, aligned[i:i + 1]) for i in range(len(aligned))],
                      emb.input_name)
    embs = {k: ArcFaceOnnxEmbedder(p) for k, p in files.items()}
    batch = aligned[:36]
    ms = _timeit({k: (lambda e=e: e.embed_aligned(batch)) for k, e in embs.items()}, a.repeats)
    ref = embs["fp32"].embed_aligned(aligned)
    print(f"embedder: {len(aligned)} calibration faces; one batch of 36 aligned faces, median of {a.repeats}:")
    for k, e in embs.items():
        cos = np.sum(ref * e.embed_aligned(aligned), axis=1)
        print(f"  {k:5s} {ms[k]:7.1f} ms  ({ms['fp32'] / ms[k]:.2f}x fp32)  cosine to fp32: "
              f"min {cos.min():.3f} median {np.median(cos):.3f}  file {files[k].name}")

    # --- detector -------------------------------------------------------------------------
    locate = scrfd_locator(a.models_dir)
    keys = sorted(ids)
    scenes = []
    for seed in range(1, 7):
        rng = np.random.default_rng(seed)
        chosen = [keys[i] for i in rng.permutation(len(keys))[:36]]
        seats = seat_grid(36, size=(1080, 1920), size_range=(20, 100), rng=np.random.default_rng(seed))
        scenes.append(make_scene([(k, ids[k][-1]) for k in chosen], locate, seats=seats, seed=seed))
    scale = 0.6
    calib, probe = scenes[:4], scenes[4:]

    dfiles = _quantize(det.model_path, a.out, [quantize.detector_input(s.image) for s in calib], "input.1")
    dets = {k: ScrfdFaceDetector(p) for k, p in dfiles.items()}
    img = probe[0].image
    ms = _timeit({k: (lambda d=d: d.detect_scaled(img, scale, 0.5)) for k, d in dets.items()}, a.repeats)
    print(f"detector: 1920x1080 classroom at scale {scale} (1152x672), median of {a.repeats}:")
    for k, d in dets.items():
        found = [score_scene(s, d.detect_scaled(s.image, scale, 0.5).xyxy, [], set(), iou=0.5) for s in probe]
        print(f"  {k:5s} {ms[k]:7.1f} ms  ({ms['fp32'] / ms[k]:.2f}x fp32)  faces found (2 held-out scenes, "
              f"20-100 px): {sum(f.found for f in found)}/{sum(f.faces for f in found)}  file {dfiles[k].name}")

    import shutil

    for src in (files["qdq"], dfiles["qdq"]):
        dst_name = src.name.replace("_qdq.onnx", "_int8.onnx")
        shutil.copyfile(src, a.out / dst_name)
        if a.install:
            shutil.copyfile(src, a.install / dst_name)
            print(f"installed {a.install / dst_name}")
    if a.skip_eval:
        return
    # --- `aas eval faces` with each embedder (detector fp32, as the eval command does) -----------
    for k in ("fp32", "dyn", "qdq"):
        evaluation.EVAL_BACKENDS[f"arcface-{k}"] = lambda d, p=files[k]: PipelineConfig(
            flow="frame", face_backend="scrfd", face_model="scrfd_2.5g.onnx", embedder="arcface-onnx",
            embed_model=str(p), profile="eval", threshold=0.42)
        r = evaluation.evaluate_folder(a.dataset, f"arcface-{k}", a.models_dir)
        print(f"eval faces, embedder {k}: {r.text()}")


if __name__ == "__main__":
    main()
