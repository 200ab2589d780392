"""int8 copies of the fast profile's models, calibrated on the installation's own photos.

``aas models quantize --photos DIR`` turns ``scrfd_2.5g.onnx`` and ``mobilefacenet.onnx`` into
``scrfd_2.5g_int8.onnx`` and ``mobilefacenet_int8.onnx`` in the models folder, where the fast
profile prefers them (``vision/profiles.py``): 1.8x (SCRFD) and 3x (mobilefacenet) faster on
x86 CPUs with VNNI, with the same `aas eval faces` figures (docs/EVALUATION.md#detection-schedule);
on CPUs where int8 does not pay, nothing is installed (below).

Why generated and not downloaded: no official int8 copies of these weights exist, and the
licence of the InsightFace weights does not let this project redistribute derived files. Static
int8 needs activation ranges, so a calibration set is needed: face photos (a few per person;
the enrollment photos an installation already has are ideal, as they come from the same
cameras and people). From them:

* the embedder is calibrated on the aligned faces (``norm_crop`` on the detector's landmarks,
  exactly what it will see);
* the detector on classroom frames composed from the same photos (``tools.synthetic``:
  faces of 20-100 px in rows on a 1920x1080 frame, the fast profile's input of 1152x672) and on
  the photos themselves letterboxed to 640x640 (how enrollment photos are searched). Both are
  needed: calibrated on rooms only, the int8 detector clipped the activations of large faces
  and found no face in close-up portraits; on portraits only it would clip a full room's.

A held-out part of the calibration set then checks each copy against its fp32 original
(cosine of the embeddings; faces found on held-out frames). A copy that disagrees is not
installed: the fast profile keeps fp32. ``onnxruntime.quantization`` does the quantisation
(QDQ format, per-channel int8 weights, uint8 activations, MinMax calibration); what is written
here is only the choice of calibration data and the acceptance check.

Two things depend on the CPU the copies are made on, so both are measured there, not assumed:

* **8-bit or 7-bit weights.** x86 CPUs without VNNI multiply uint8 activations by int8 weights
  with VPMADDUBSW, whose int16 pair sums saturate when the weights use the full 8-bit range
  (onnxruntime's quantization docs; 7-bit weights, ``reduce_range``, cannot saturate). On an
  AVX2-only AMD EPYC the 8-bit embedder reached a cosine of 0.976 to fp32 and the 8-bit
  detector lost 2 of 71 faces; 7-bit gave 0.988 and 71 of 71, while CPUs with VNNI did better
  with 8-bit (0.994). Both are made and checked; the one closer to fp32 is kept.
* **Speed.** The same AVX2-only CPU ran both int8 models *slower* than fp32 (mobilefacenet,
  36 faces: 280 vs 265 ms). A copy that is not at least ``MIN_SPEEDUP`` times faster than fp32
  on this machine, timed side by side, would only cost accuracy, so it is not installed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from aas_core.media.decode import ImageError, read_image
from aas_core.tools.synthetic import make_scene, score_scene, scrfd_locator, seat_grid
from aas_core.vision.embed.arcface_onnx import ArcFaceOnnxEmbedder
from aas_core.vision.faces.scrfd import ScrfdFaceDetector
from aas_core.vision.nms import box_iou
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import resolve_profile
from aas_core.vision.templates import DEFAULT_VIEWS, aligned_input, render_view
from aas_core.vision.weights import sha256_file

log = logging.getLogger(__name__)

#: fp32 source file -> its int8 copy (the names the fast profile looks for).
INT8_COPIES: dict[str, str] = {"scrfd_2.5g.onnx": "scrfd_2.5g_int8.onnx", "mobilefacenet.onnx": "mobilefacenet_int8.onnx"}

#: Fewest faces the calibration set must give: fewer calibrate the activation ranges on too
#: little variety (lighting, skin, size) to trust.
MIN_FACES = 20
#: Most faces used (calibration time grows linearly; 200 faces take about a minute).
MAX_FACES = 200
#: Acceptance: median / lowest cosine of int8 to fp32 embeddings on held-out faces. The
#: copies made from faces_dev measure 0.993 / 0.977 (docs/EVALUATION.md#detection-schedule);
#: a copy far under that was calibrated on unsuitable photos.
MIN_MEDIAN_COSINE = 0.98
MIN_LOWEST_COSINE = 0.90
#: Acceptance on the same faces as a classroom camera sees them (24-44 px, dim, noisy): ours
#: measure 0.991 median, and 0.988 on the faces of the hard lecture-hall benchmark.
MIN_VIEW_MEDIAN_COSINE = 0.97
#: Acceptance: the int8 detector may miss at most this many faces more than fp32 on the
#: held-out frames (two frames of 36 faces), and on the held-out portraits.
MAX_EXTRA_MISSED = 1

#: Weight ranges tried for each model (see the module docstring): bits -> ``reduce_range``.
WEIGHT_BITS: dict[int, bool] = {8: False, 7: True}
#: Acceptance: an int8 copy must run at least this many times faster than fp32 on this machine
#: (medians of interleaved runs on held-out inputs); under it, int8 only costs accuracy.
MIN_SPEEDUP = 1.2
#: Interleaved timing runs per model for the speed check.
SPEED_REPEATS = 7

#: Network input of the fast profile's whole-frame pass on a 1080p frame (scale 0.6, padded to 32).
_DET_SIZE = (1152, 672)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class QuantizeError(ValueError):
    """The calibration set cannot make trustworthy int8 copies (message says why and what to do)."""


@dataclass
class Int8Report:
    """What one ``build_int8_models`` run made and measured (also saved beside each copy as JSON)."""

    photos: int
    faces_calibration: int
    faces_checked: int
    frames_calibration: int
    frames_checked: int
    embed_cosine_median: float = float("nan")
    embed_cosine_min: float = float("nan")
    view_cosine_median: float = float("nan")
    view_cosine_min: float = float("nan")
    faces_found_fp32: int = 0
    faces_found_int8: int = 0
    faces_truth: int = 0
    portraits_checked: int = 0
    portraits_found_fp32: int = 0
    portraits_found_int8: int = 0
    landmark_shift: float = float("nan")  # mean int8-vs-fp32 landmark distance / face width, held-out frames
    weight_bits: dict[str, int] = field(default_factory=dict)  # source file -> bits of the copy kept (8 or 7)
    tried: list[str] = field(default_factory=list)  # one line per copy made: its bits and checks
    ms_fp32: dict[str, float] = field(default_factory=dict)  # source file -> median ms, held-out input
    ms_int8: dict[str, float] = field(default_factory=dict)  # the kept copy, same input, same run
    installed: dict[str, str] = field(default_factory=dict)  # source file -> installed int8 file
    refused: dict[str, str] = field(default_factory=dict)  # source file -> why not installed
    seconds: float = 0.0

    def text(self) -> str:
        lines = [f"calibration: {self.photos} photos -> {self.faces_calibration + self.faces_checked} faces: "
                 f"{self.faces_calibration} faces and {self.frames_calibration} classroom frames to calibrate, "
                 f"{self.faces_checked} faces and {self.frames_checked} other frames to check",
                 f"embedder int8 vs fp32 on held-out faces: cosine median {self.embed_cosine_median:.3f}, "
                 f"lowest {self.embed_cosine_min:.3f}; as a classroom camera sees them: median "
                 f"{self.view_cosine_median:.3f}, lowest {self.view_cosine_min:.3f}",
                 f"detector on held-out frames: fp32 found {self.faces_found_fp32}/{self.faces_truth}, "
                 f"int8 {self.faces_found_int8}/{self.faces_truth}; on held-out portraits: fp32 "
                 f"{self.portraits_found_fp32}/{self.portraits_checked}, int8 {self.portraits_found_int8}/"
                 f"{self.portraits_checked}; landmarks moved by {100 * self.landmark_shift:.2f} % of the "
                 "face width on average"]
        if len(self.tried) > 1:
            lines += ["copies made (the one that passes, closer to fp32, is kept): " + "; ".join(self.tried)]
        lines += [f"{src}: {self.weight_bits.get(src, 8)}-bit weights, fp32 {self.ms_fp32[src]:.0f} ms, int8 "
                  f"{self.ms_int8[src]:.0f} ms on this machine ({self.ms_fp32[src] / self.ms_int8[src]:.2f}x)"
                  for src in self.ms_int8 if src in self.ms_fp32]
        lines += [f"installed {dst} (from {src})" for src, dst in self.installed.items()]
        lines += [f"NOT installed: int8 copy of {src}: {why}" for src, why in self.refused.items()]
        lines.append(f"took {self.seconds:.0f} s")
        return "\n".join(lines)


class _Reader:
    """onnxruntime ``CalibrationDataReader`` over a list of input arrays (batch 1 each)."""

    def __init__(self, name: str, arrays: Sequence[np.ndarray]) -> None:
        self.name, self.arrays, self.i = name, list(arrays), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.arrays):
            return None
        self.i += 1
        return {self.name: self.arrays[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def _preprocessed(src: Path, work: Path) -> Path:
    """``quant_pre_process`` (shape inference + graph optimisation) at opset >= 13 (per-channel QDQ)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = work / f"{src.stem}_pre.onnx"
    try:
        quant_pre_process(str(src), str(pre))
    except Exception:  # noqa: BLE001 - SCRFD's dynamic H/W defeat symbolic shape inference; ONNX's own is enough
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    m = onnx.load(str(pre))
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:  # per-channel QDQ (DequantizeLinear with an axis) needs opset 13
        onnx.save(version_converter.convert_version(m, 13), str(pre))
    return pre


def quantize_static(src: Path, dst: Path, input_name: str, inputs: Sequence[np.ndarray], *,
                    reduce_range: bool = False) -> Path:
    """Static int8 (QDQ, per-channel int8 weights, uint8 activations, MinMax) of ``src`` into ``dst``;
    ``reduce_range``: 7-bit weights (no saturation on x86 CPUs without VNNI)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    src, dst = Path(src).resolve(), Path(dst).resolve()
    # onnx and the calibrator write external-data files ("<uuid>.data") into the working
    # directory: run every step inside a private temporary one (the CLI is one process; this
    # is not for a server thread, as the working directory is process-wide)
    with tempfile.TemporaryDirectory(prefix="aas-int8-") as tmp, contextlib.chdir(tmp):
        work = Path(tmp)
        pre = _preprocessed(src, work)
        ort_quantize_static(str(pre), str(work / dst.name), _Reader(input_name, inputs),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            reduce_range=reduce_range)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(work / dst.name, dst)
    return dst


def quantize_dynamic(src: Path, dst: Path) -> Path:
    """``quantize_dynamic`` (int8 weights, activations at run time): for comparison in benchmarks only
    (ConvInteger is 8x slower than fp32 on CPU)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    src, dst = Path(src).resolve(), Path(dst).resolve()
    with tempfile.TemporaryDirectory(prefix="aas-int8-") as tmp, contextlib.chdir(tmp):
        ort_quantize_dynamic(str(_preprocessed(src, Path(tmp))), str(dst), weight_type=QuantType.QInt8)
    return dst


def photos_in(folder: Path) -> list[Path]:
    """Image files under ``folder`` (any depth), sorted: ``<person>/*.jpg`` or a flat folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise QuantizeError(f"{folder} is not a folder of face photos")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)


def embedder_input(embedder, aligned: np.ndarray) -> np.ndarray:
    """The embedder's network input for aligned uint8 BGR crops (its own normalisation)."""
    x = (aligned[..., ::-1].astype(np.float32) - embedder.input_mean) / embedder.input_std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def detector_input(frame_bgr: np.ndarray, size: tuple[int, int] = _DET_SIZE) -> np.ndarray:
    """SCRFD's network input for a frame shrunk to ``size`` (width, height; insightface's normalisation)."""
    w, h = size
    fh, fw = frame_bgr.shape[:2]
    s = min(w / fw, h / fh)
    nw, nh = round(fw * s), round(fh * s)
    pad = np.zeros((h, w, 3), np.uint8)
    pad[:nh, :nw] = cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(((pad[..., ::-1].astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None])


def _faces_of(photos: Sequence[Path], pipeline) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """What the embedder sees of each photo's largest face, through the fast profile's own crop /
    CLAHE / align path: the portrait (N, 112, 112, 3), and the same face as a classroom camera
    sees it (N * len(DEFAULT_VIEWS), ...: 24-44 px, fair and dim-noisy light, as the classroom
    templates render it), and the photos a face was found in."""
    portraits, views, located = [], [], []
    for p in photos:
        try:
            img = read_image(p)
        except (ImageError, OSError, ValueError) as exc:
            log.warning("calibration: skipping %s (%s)", p, exc)
            continue
        pad = max(img.shape[:2]) // 3 if max(img.shape[:2]) <= 160 else 0  # tight crops: give the detector context
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else img
        found = pipeline.face_detector.detect(padded, 0.5)
        if not len(found):
            continue
        face = found[int(np.argmax(found.area))]
        portraits.append(aligned_input(pipeline, padded, face))
        views.append(np.concatenate([aligned_input(pipeline, *render_view(padded, face, v)) for v in DEFAULT_VIEWS]))
        located.append(p)
    empty = np.zeros((0, 112, 112, 3), np.uint8)
    return (np.concatenate(portraits) if portraits else empty), (np.concatenate(views) if views else empty), located


def _frames(located: list[Path], locate, n: int, seed: int):  # type: ignore[no-untyped-def]
    """n synthetic 1920x1080 classrooms, 36 faces of 20-100 px each, from the calibration photos
    (``locate`` cuts each face out of its photo)."""
    scenes = []
    for k in range(n):
        rng = np.random.default_rng(seed + k)
        pick = rng.choice(len(located), size=36, replace=len(located) < 36)
        seats = seat_grid(36, size=(1080, 1920), size_range=(20, 100), rng=rng)
        scenes.append(make_scene([(str(j), located[int(i)]) for j, i in enumerate(pick)], locate,
                                 seats=seats, seed=seed + k))
    return scenes


def _portraits_found(detector, photos: Sequence[Path]) -> int:
    """How many of ``photos`` the detector finds a face in, searched as enrollment photos are."""
    return sum(len(detector.detect(read_image(p), 0.5)) > 0 for p in photos)


def _found(detector, scenes) -> tuple[int, int, list]:
    """Truth faces found (IoU >= 0.5), truth faces, and the detections of each scene."""
    found = truth = 0
    dets = []
    for sc in scenes:
        fh, fw = sc.image.shape[:2]
        scale = min(_DET_SIZE[0] / fw, _DET_SIZE[1] / fh)
        d = detector.detect_scaled(sc.image, scale, 0.5)
        r = score_scene(sc, d.xyxy, [], set(), iou=0.5)
        found, truth = found + r.found, truth + r.faces
        dets.append(d)
    return found, truth, dets


def _landmark_shift(ref: list, other: list) -> float:
    """Mean distance between the landmarks of the same faces (IoU >= 0.5) / face width."""
    shifts = []
    for a, b in zip(ref, other):
        if not len(a) or not len(b) or a.landmarks is None or b.landmarks is None:
            continue
        iou = box_iou(a.xyxy, b.xyxy)
        j = iou.argmax(axis=1)
        ok = iou[np.arange(len(a)), j] >= 0.5
        width = a.xyxy[ok, 2] - a.xyxy[ok, 0]
        d = np.linalg.norm(a.landmarks[ok] - b.landmarks[j[ok]], axis=2).mean(axis=1)
        shifts.extend(d / np.maximum(width, 1))
    return float(np.mean(shifts)) if shifts else float("nan")


def build_int8_models(models_dir: Path, photos: Sequence[Path], *, out_dir: Path | None = None,
                      max_faces: int = MAX_FACES, frames: int = 4, seed: int = 0,
                      min_speedup: float = MIN_SPEEDUP) -> Int8Report:
    """Quantise the fast profile's SCRFD and mobilefacenet on ``photos``; install the copies that pass.

    Writes ``<stem>_int8.onnx`` and ``<stem>_int8.json`` (this report, the source's sha256) into
    ``out_dir`` (default ``models_dir``). Each model is made with 8-bit and with 7-bit weights and
    the copy closer to fp32 is checked; it is installed when it agrees with fp32 and runs at least
    ``min_speedup`` times faster on this machine (0: whatever its speed). Raises
    :class:`QuantizeError` when the photos give fewer than ``MIN_FACES`` faces or a source model
    is missing.
    """
    t0 = time.perf_counter()
    models_dir = Path(models_dir)
    out_dir = Path(out_dir or models_dir)
    for src in INT8_COPIES:
        if not (models_dir / src).is_file():
            raise QuantizeError(f"{models_dir / src} is missing: fetch the fast profile's models first "
                                f"(`aas models list` shows what is there)")
    # the fp32 fast profile, whatever copies are installed already (its CLAHE and alignment
    # make the embedder's inputs)
    cfg = resolve_profile("fast", models_dir)[0].with_(face_backend="scrfd", face_model="scrfd_2.5g.onnx",
                                                          embedder="arcface-onnx", embed_model="mobilefacenet.onnx")
    pipe = Pipeline(cfg, models_dir)
    det, emb = pipe.face_detector, pipe.embedder
    photos = list(photos)
    rng = np.random.default_rng(seed)
    if len(photos) > max_faces * 1.25:  # enough photos: a spread-out sample, not the first folders only
        photos = [photos[i] for i in sorted(rng.choice(len(photos), int(max_faces * 1.25), replace=False))]
    crops, views, located = _faces_of(photos, pipe)
    if len(crops) < MIN_FACES:
        raise QuantizeError(f"the calibration photos gave {len(crops)} faces; at least {MIN_FACES} are needed "
                            "(a few clear photos per person, e.g. the enrollment photos)")
    n = min(len(crops), max_faces)
    nv = len(DEFAULT_VIEWS)
    crops, views, located = crops[:n], views[: n * nv], located[:n]
    # every 5th face is held out for the check; the detector's frames use all photos, but the
    # held-out frames are drawn with other seeds (other faces, sizes and places)
    held = np.arange(n) % 5 == 4
    held_v = np.repeat(held, nv)
    locate = scrfd_locator(models_dir)
    scenes_cal, scenes_chk = _frames(located, locate, frames, seed), _frames(located, locate, 2, seed + 1000)
    rep = Int8Report(photos=len(photos), faces_calibration=int((~held).sum()), faces_checked=int(held.sum()),
                     frames_calibration=len(scenes_cal), frames_checked=len(scenes_chk))
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aas-int8-", dir=out_dir) as tmp:
        tmp_dir = Path(tmp)
        # embedder: calibrated on portraits and on classroom views (dim, noisy, small faces
        # have other activation ranges: calibrated on portraits alone, the int8 embedder
        # drifted on them and named wrong students in the crowded lecture hall)
        cal = np.concatenate([crops[~held], views[~held_v]])
        emb_inputs = [embedder_input(emb, cal[i : i + 1]) for i in range(len(cal))]
        ref_crops, ref_views = emb.embed_aligned(crops[held]), emb.embed_aligned(views[held_v])
        emb_made = []  # (passes the check, closeness to fp32, bits, path, cosines)
        for bits, reduce in WEIGHT_BITS.items():
            path = quantize_static(emb.model_path, tmp_dir / f"{bits}" / INT8_COPIES["mobilefacenet.onnx"],
                                   emb.input_name, emb_inputs, reduce_range=reduce)
            emb8 = ArcFaceOnnxEmbedder(path)
            cos_c = np.sum(ref_crops * emb8.embed_aligned(crops[held]), axis=1)
            cos_v = np.sum(ref_views * emb8.embed_aligned(views[held_v]), axis=1)
            emb_made.append((_embedder_disagrees(cos_c, cos_v) is None, float(np.median(cos_c) + np.median(cos_v)),
                             bits, path, (cos_c, cos_v)))
            rep.tried.append(f"embedder {bits}-bit: cosine median {np.median(cos_c):.3f}, lowest {cos_c.min():.3f}, "
                             f"classroom views {np.median(cos_v):.3f}")
        _, _, bits, emb_q, (cos_c, cos_v) = max(emb_made, key=lambda m: (m[0], m[1]))
        rep.weight_bits["mobilefacenet.onnx"] = bits
        rep.embed_cosine_median, rep.embed_cosine_min = float(np.median(cos_c)), float(cos_c.min())
        rep.view_cosine_median, rep.view_cosine_min = float(np.median(cos_v)), float(cos_v.min())
        # detector
        portraits = [located[i] for i in np.flatnonzero(~held)[:: max(1, int((~held).sum()) // 40)]]
        det_inputs = ([detector_input(sc.image) for sc in scenes_cal]
                      + [detector_input(read_image(p), (640, 640)) for p in portraits])
        rep.faces_found_fp32, rep.faces_truth, ref = _found(det, scenes_chk)
        checked = [located[i] for i in np.flatnonzero(held)]
        rep.portraits_checked = len(checked)
        rep.portraits_found_fp32 = _portraits_found(det, checked)
        det_made = []  # (faces found, portraits found, -landmark shift, bits, path)
        for bits, reduce in WEIGHT_BITS.items():
            path = quantize_static(det.model_path, tmp_dir / f"{bits}" / INT8_COPIES["scrfd_2.5g.onnx"], "input.1",
                                   det_inputs, reduce_range=reduce)
            det_int8 = ScrfdFaceDetector(path)
            found, _, got = _found(det_int8, scenes_chk)
            shift = _landmark_shift(ref, got)
            det_made.append((found, _portraits_found(det_int8, checked), -shift, bits, path))
            rep.tried.append(f"detector {bits}-bit: {found}/{rep.faces_truth} faces, landmarks moved "
                             f"{100 * shift:.2f} %")
        rep.faces_found_int8, rep.portraits_found_int8, neg_shift, bits, det_q = max(
            det_made, key=lambda m: (m[0] + m[1], m[2]))
        rep.landmark_shift = -neg_shift
        rep.weight_bits["scrfd_2.5g.onnx"] = bits

        # speed, side by side on this machine: the held-out faces in one batch; one held-out frame
        # at the fast profile's whole-frame input
        batch = crops[held][:36]
        frame = scenes_chk[0].image
        scale = min(_DET_SIZE[0] / frame.shape[1], _DET_SIZE[1] / frame.shape[0])
        emb8, det8 = ArcFaceOnnxEmbedder(emb_q), ScrfdFaceDetector(det_q)
        for src, run32, run8 in (
            ("mobilefacenet.onnx", lambda: emb.embed_aligned(batch), lambda: emb8.embed_aligned(batch)),
            ("scrfd_2.5g.onnx", lambda: det.detect_scaled(frame, scale, 0.5), lambda: det8.detect_scaled(frame, scale, 0.5)),
        ):
            rep.ms_fp32[src], rep.ms_int8[src] = _interleaved_ms(run32, run8, SPEED_REPEATS)

        accuracy = {
            "mobilefacenet.onnx": (emb_q, _embedder_disagrees(cos_c, cos_v)),
            "scrfd_2.5g.onnx": (det_q, None if rep.faces_found_int8 >= rep.faces_found_fp32 - MAX_EXTRA_MISSED
                                and rep.portraits_found_int8 >= rep.portraits_found_fp32 - MAX_EXTRA_MISSED else
                                f"finds {rep.faces_found_int8} faces in classrooms where fp32 finds "
                                f"{rep.faces_found_fp32} (of {rep.faces_truth}), and a face in "
                                f"{rep.portraits_found_int8} portraits where fp32 finds one in {rep.portraits_found_fp32}"),
        }
        for src, (made, why) in accuracy.items():
            why = why or too_slow(rep.ms_fp32[src], rep.ms_int8[src], min_speedup)
            dst = out_dir / INT8_COPIES[src]
            if why is not None:
                rep.refused[src] = why
                continue
            rep.installed[src] = dst.name
            made.replace(dst)  # same filesystem: atomic
        rep.seconds = time.perf_counter() - t0
        for src, dst_name in rep.installed.items():
            meta = {"source": src, "source_sha256": sha256_file(models_dir / src), "made": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "method": f"onnxruntime static QDQ, per-channel {rep.weight_bits[src]}-bit int8 weights, "
                              "uint8 activations, MinMax",
                    "report": asdict(rep)}
            (out_dir / dst_name).with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return rep


def _embedder_disagrees(cos_portraits: np.ndarray, cos_views: np.ndarray) -> str | None:
    """Why int8 embeddings (cosines to fp32 on held-out portraits and classroom views) are not close enough."""
    med, low, view = float(np.median(cos_portraits)), float(cos_portraits.min()), float(np.median(cos_views))
    if med >= MIN_MEDIAN_COSINE and low >= MIN_LOWEST_COSINE and view >= MIN_VIEW_MEDIAN_COSINE:
        return None
    return (f"embeddings disagree with fp32 (cosine median {med:.3f}, lowest {low:.3f}, classroom views {view:.3f}; "
            f"need >= {MIN_MEDIAN_COSINE} / {MIN_LOWEST_COSINE} / {MIN_VIEW_MEDIAN_COSINE})")


def _interleaved_ms(run_a, run_b, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median milliseconds of two callables run alternately (a load change hits both alike), after a warm-up."""
    run_a(), run_b()
    a, b = [], []
    for _ in range(repeats):
        for fn, out in ((run_a, a), (run_b, b)):
            t = time.perf_counter()
            fn()
            out.append(1000 * (time.perf_counter() - t))
    return float(np.median(a)), float(np.median(b))


def too_slow(ms_fp32: float, ms_int8: float, min_speedup: float = MIN_SPEEDUP) -> str | None:
    """Why an int8 copy is not worth installing on this machine, or None when it is fast enough."""
    if ms_int8 * min_speedup <= ms_fp32:
        return None
    return (f"not faster on this CPU: int8 {ms_int8:.0f} ms against fp32 {ms_fp32:.0f} ms ({ms_fp32 / ms_int8:.2f}x, "
            f"need >= {min_speedup}x); its int8 kernels do not pay here (e.g. x86 without VNNI), so fp32 is kept")


def int8_info(models_dir: Path) -> list[dict]:
    """The int8 copies present in ``models_dir``: file, source, whether the source changed since."""
    out = []
    for src, dst in INT8_COPIES.items():
        path = Path(models_dir) / dst
        if not path.is_file():
            continue
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        src_path = Path(models_dir) / src
        stale = bool(meta.get("source_sha256")) and src_path.is_file() and sha256_file(src_path) != meta["source_sha256"]
        out.append({"file": dst, "source": src, "made": meta.get("made"), "stale": stale,
                    "cosine_median": meta.get("report", {}).get("embed_cosine_median")})
    return out
