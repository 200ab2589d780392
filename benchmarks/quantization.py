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
``--install DIR`` copies those two into a models folder, where the ``fast`` profile prefers
them (``vision/profiles.py``). The int8 embedder has its own model name, so rosters are
re-embedded on the next session start, as after any model change.
"""

from __future__ import annotations

import argparse
import contextlib
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
from aas_core.vision.profiles import PipelineConfig


class _Reader:
    """onnxruntime CalibrationDataReader over a list of input arrays (batch 1 each)."""

    def __init__(self, name: str, arrays: list[np.ndarray]) -> None:
        self.name, self.arrays, self.i = name, arrays, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.arrays):
            return None
        self.i += 1
        return {self.name: self.arrays[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def _quantize(src: Path, out_dir: Path, reader: _Reader) -> dict[str, Path]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, out_dir = src.resolve(), out_dir.resolve()  # the quantisers run inside out_dir (below)
    pre = out_dir / f"{src.stem}_pre.onnx"
    try:
        quant_pre_process(str(src), str(pre))
    except Exception:  # noqa: BLE001 - SCRFD's dynamic H/W defeat symbolic shape inference; ONNX's own is enough
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    import onnx
    from onnx import version_converter

    m = onnx.load(str(pre))
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:  # per-channel QDQ (DequantizeLinear with an axis) needs opset 13
        onnx.save(version_converter.convert_version(m, 13), str(pre))
    dyn, qdq = out_dir / f"{src.stem}_dyn.onnx", out_dir / f"{src.stem}_qdq.onnx"
    # The calibrator saves its augmented model's weights as "<uuid>.data" in the working
    # directory: keep them in out_dir, not in the checkout.
    with contextlib.chdir(out_dir):
        quantize_dynamic(str(pre), str(dyn), weight_type=QuantType.QInt8)
        quantize_static(str(pre), str(qdq), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return {"fp32": src, "dyn": dyn, "qdq": qdq}


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

    def prep(b: np.ndarray) -> np.ndarray:
        x = (b[..., ::-1].astype(np.float32) - emb.input_mean) / emb.input_std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    files = _quantize(emb.model_path, a.out, _Reader(emb.input_name, [prep(aligned[i:i + 1]) for i in range(len(aligned))]))
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

    def det_input(img: np.ndarray) -> np.ndarray:
        import cv2

        s = cv2.resize(img, (1152, 648), interpolation=cv2.INTER_AREA)
        pad = np.zeros((672, 1152, 3), np.uint8)
        pad[:648] = s
        return ((pad[..., ::-1].astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None].copy()

    dfiles = _quantize(det.model_path, a.out, _Reader("input.1", [det_input(s.image) for s in calib]))
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
