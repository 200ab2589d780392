"""What works on this installation and, for what does not, why (shown on the dashboard's Home).

:func:`feature_availability` checks the model files against the registry manifest (present,
missing, truncated/tampered) and the Python packages each backend needs, without loading a
single model, so it is cheap enough to run on every page load (hashes are cached by the
registry per file size and mtime).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2

#: Human labels for the keys returned by :func:`feature_availability`.
FEATURE_LABELS: dict[str, str] = {
    "profile:fast": "Recognition, fast profile (SCRFD + ArcFace)",
    "profile:accurate": "Recognition, accurate profile (persons -> faces -> super-resolution -> ArcFace)",
    "profile:offline": "Recognition, offline profile (dlib)",
    "face_detection": "Face detection models (SCRFD / YuNet)",
    "face_recognition": "Face recognition models (ArcFace)",
    "person_detection": "Person detection models (YOLO)",
    "super_resolution": "Super-resolution of small faces",
    "video_enrollment": "Enrollment from video files",
}

# Python packages each backend needs (beyond numpy/OpenCV).
_BACKEND_PACKAGES: dict[str, tuple[str, ...]] = {
    "ultralytics": ("ultralytics", "torch"),
    "yolo-onnx": ("onnxruntime",),
    "yolox-onnx": ("onnxruntime",),
    "scrfd": ("onnxruntime",),
    "yunet": (),
    "retinaface": ("torch",),
    "sr-spandrel": ("spandrel", "torch"),
    "sr-opencv": (),
    "arcface-onnx": ("onnxruntime",),
    "dlib-resnet": ("dlib",),
    "dlib-hog": ("dlib",),
}
_STAGE_FEATURE = {"face": "face_detection", "embed": "face_recognition", "person": "person_detection",
                  "enhance": "super_resolution"}
# Backends a profile can actually use per stage (others in the manifest are for experiments).
_PROFILE_BACKENDS = {"face": {"scrfd", "yunet"}, "embed": {"arcface-onnx"},
                     "person": {"ultralytics", "yolo-onnx", "yolox-onnx"}, "enhance": {"sr-spandrel", "sr-opencv"}}


def _missing_packages(backend: str) -> list[str]:
    missing = [p for p in _BACKEND_PACKAGES.get(backend, ()) if importlib.util.find_spec(p) is None]
    if backend == "sr-opencv" and not hasattr(cv2, "dnn_superres"):
        missing.append("opencv-contrib (cv2.dnn_superres)")
    return missing


def _file_problem(file: str, models_dir: Path, states: dict[str, object]) -> str | None:
    """None if ``file`` is usable, else why not (names the file and the fix)."""
    st = states.get(file)
    if st is None:  # not in the manifest: usable if it exists (unverified)
        return None if (models_dir / file).is_file() else f"{file} missing"
    state, detail, backend, name = (getattr(st, a) for a in ("state", "detail", "backend", "name"))
    if state == "missing":
        return f"{file} missing (run `aas models fetch {name}`)"
    if state == "corrupt":
        return f"{file} is corrupt: {detail} (delete it and run `aas models fetch {name}`)"
    pk = _missing_packages(str(backend))
    if pk:
        return f"{file} needs the Python package(s) {', '.join(pk)}"
    return None


def _stage_feature(stage: str, models_dir: Path, statuses: list) -> str | None:  # type: ignore[type-arg]
    wanted = [st for st in statuses if st.stage == stage and st.backend in _PROFILE_BACKENDS[stage]]
    problems = []
    for st in wanted:
        p = _file_problem(st.file, models_dir, {st.file: st})
        if p is None:
            return None
        problems.append(p)
    if not problems:
        return f"no {stage} model known to the manifest"
    # Corrupt files first (they need action), then the rest, kept short for the dashboard.
    problems.sort(key=lambda p: "corrupt" not in p)
    more = f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
    return "no usable model: " + "; ".join(problems[:4]) + more


def _offline(models_dir: Path, states: dict[str, object]) -> str | None:
    if importlib.util.find_spec("dlib") is None:
        return "the Python package dlib is not installed"
    problems = [p for f in ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")
                if f in states and (p := _file_problem(f, models_dir, states))]
    return "; ".join(problems) or None


def _profile(name: str, models_dir: Path, states: dict[str, object], statuses: list) -> str | None:  # type: ignore[type-arg]
    from aas_core.vision.profiles import resolve_profile

    try:
        cfg, notes = resolve_profile(name, models_dir)
    except Exception as exc:  # noqa: BLE001 - shown to the admin as is
        return f"{exc.__class__.__name__}: {exc}"
    if cfg.profile != name:  # it fell back: a required stage (faces, embeddings) has no file at all
        problems = []
        for stage, label in (("face", "face detector"), ("embed", "ArcFace model")):
            stage_problem = _stage_feature(stage, models_dir, statuses)
            if stage_problem:
                problems.append(f"no {label}: {stage_problem.removeprefix('no usable model: ')}")
            else:  # usable, but a corrupt file of this stage is worth fixing too
                problems += [p for st in statuses if st.stage == stage and st.state == "corrupt"
                             and (p := _file_problem(st.file, models_dir, states))]
        return "; ".join(problems) or next((n for n in notes if n.startswith(f"{name}:")), "required models missing")
    # The profile picks the first file *present*; a truncated one would be picked and then fail.
    files = [cfg.face_model, cfg.embed_model]
    if cfg.flow == "persons":
        files.append(cfg.person_model)
    if cfg.enhancer:
        files.append(cfg.enhancer_model)
    problems = [p for f in files if f and (p := _file_problem(f, models_dir, states))]
    return "; ".join(problems) or None


def _video() -> str | None:
    try:
        from cv2 import videoio_registry as vr

        names = {vr.getBackendName(b) for b in vr.getStreamBackends()}
    except Exception:  # noqa: BLE001
        return "this OpenCV build cannot read video files"
    return None if names & {"FFMPEG", "GSTREAMER", "MSMF", "AVFOUNDATION"} else \
        "this OpenCV build has no FFMPEG/GStreamer backend: upload photos instead"


def feature_availability(models_dir: str | Path) -> dict[str, str | None]:
    """Each feature in :data:`FEATURE_LABELS` -> ``None`` when available, else the reason.

    Reasons name the file at fault and the fix (``aas models fetch NAME``); for example a
    truncated ``scrfd_2.5g.onnx`` gives ``"scrfd_2.5g.onnx is corrupt: size 1000 bytes,
    expected 3292009 (delete it and run `aas models fetch scrfd_2.5g`)"``.
    """
    from aas_core.vision import weights as registry

    mdir = Path(models_dir)
    out: dict[str, str | None] = {}
    try:
        statuses = registry.status(mdir)
    except Exception as exc:  # noqa: BLE001 - a broken manifest disables every model feature
        reason = f"model manifest unreadable: {exc.__class__.__name__}: {exc}"
        out = {k: reason for k in FEATURE_LABELS}
        out["video_enrollment"] = _video()
        return out
    states: dict[str, object] = {st.file: st for st in statuses}
    offline = _offline(mdir, states)
    for name in ("fast", "accurate"):
        out[f"profile:{name}"] = _profile(name, mdir, states, statuses)
    out["profile:offline"] = offline
    for stage in ("face", "embed", "person", "enhance"):
        reason = _stage_feature(stage, mdir, statuses)
        if reason and stage in ("face", "embed") and offline is None:
            reason += " (the offline dlib profile still works)"
        out[_STAGE_FEATURE[stage]] = reason
    out["video_enrollment"] = _video()
    return out


def unavailable(models_dir: str | Path) -> dict[str, str]:
    """Only the unavailable features, labelled for display: {label: reason}."""
    return {FEATURE_LABELS.get(k, k): v for k, v in feature_availability(models_dir).items() if v is not None}
