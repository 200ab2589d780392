"""Cached resources for the dashboard: settings, DB, image store, pipelines (one per config).

``get_pipeline(config)`` is the one place pages get a pipeline: ``st.cache_resource`` keeps
one per ``PipelineConfig`` (a frozen dataclass, hashed field by field) for the whole server
process, and the backends behind it cache their model sessions too, so a rerun or a second
browser tab never loads weights again.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from aas_core.config import Settings, get_settings

if TYPE_CHECKING:
    from aas_core.media.store import ImageStore
    from aas_core.services.auth import AuthUser
    from aas_core.services.review import Review
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import PipelineConfig


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    return get_settings()


@st.cache_resource(show_spinner="Preparing the database…")
def database_url() -> str:
    """The configured database, schema upgraded once per process."""
    from aas_core.db import init_db

    url = settings().database_url
    init_db(url)
    # Once per server start: files a crashed writer left (kill -9 mid-write) that no row refers to.
    from aas_core.db.models import Role
    from aas_core.services import in_transaction, privacy
    from aas_core.services.auth import AuthUser

    in_transaction(url, privacy.sweep_orphan_files, image_store(), AuthUser(0, "system", Role.ADMIN), journal_only=True)
    return url


def models_dir() -> Path:
    s = settings()
    return s.resolved(s.models_dir)


@st.cache_resource(show_spinner=False)
def image_store() -> ImageStore:
    from aas_core.media.store import ImageStore

    s = settings()
    root = s.resolved(s.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    return ImageStore(root)


# --- session review (crops and snapshots) ---------------------------------------------------

@st.cache_data(show_spinner="Loading the session…", max_entries=4)
def _review(url: str, session_id: int, username: str, fingerprint: str, _store: ImageStore,
            _user: AuthUser) -> Review:
    from aas_core.services.review import load_review

    return load_review(url, _store, _user, session_id)


def session_review(url: str, store: ImageStore, user: AuthUser, session_id: int) -> Review:
    """The review of a session (statuses, evidence crops, annotated snapshots), cached per viewer.

    Crops are read from disk once per change of the session, not per rerun. The key holds
    ``review.review_fingerprint``, which changes with every consent withdrawal, erasure, purge
    or correction (and with the crops of the session themselves): a cached review never shows
    a face whose crop has since been deleted.
    """
    from aas_core.services.review import review_fingerprint

    return _review(url, session_id, user.username, review_fingerprint(url, session_id), store, user)


# --- pipeline configuration -----------------------------------------------------------------

@st.cache_data(show_spinner=False, ttl=300)
def _base_config(profile: str | None) -> tuple[Any, list[str]]:
    from aas_core.services.pipelines import pipeline_config

    return pipeline_config(settings(), profile, models_dir())


def base_config(profile: str | None = None) -> tuple[PipelineConfig, list[str]]:
    """The configured profile with the settings applied (``services.pipelines``, as the CLI)."""
    cfg, notes = _base_config(profile)
    return cfg, list(notes)


@st.cache_resource(show_spinner="Loading models…", max_entries=6)
def get_pipeline(config: PipelineConfig) -> Pipeline:
    """One pipeline per config, models loaded (warm) once per server process."""
    from aas_core.vision.pipeline import Pipeline

    pipe = Pipeline(config, models_dir())
    pipe.warm_up()
    _loaded()[config] = pipe
    return pipe


@st.cache_resource(show_spinner=False)
def _loaded() -> dict[Any, Any]:
    """Pipelines built in this process (for the Home page's 'models loaded' line)."""
    return {}


def loaded_pipelines() -> list[Pipeline]:
    return list(_loaded().values())


# --- ONNX Runtime providers -----------------------------------------------------------------

@dataclass
class ProviderReport:
    configured: list[str]
    available: list[str]
    effective: str  # first usable provider
    gpu_present: bool
    cuda_expected: bool  # configured explicitly with CUDA, or an NVIDIA GPU is present
    messages: list[str] = field(default_factory=list)

    @property
    def cuda_missing(self) -> bool:
        return self.cuda_expected and self.effective != "CUDAExecutionProvider"


def _gpu_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def provider_report(s: Settings | None = None) -> ProviderReport:
    """Which ONNX Runtime provider the models run on, and whether that is what was expected.

    CUDA is *expected* when ``AAS_ONNX_PROVIDERS`` names it explicitly or an NVIDIA driver
    is present; then running on CPU is a misconfiguration worth a loud warning (usually the
    CPU-only ``onnxruntime`` wheel instead of ``onnxruntime-gpu``).
    """
    s = s or settings()
    try:
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    except Exception as exc:  # noqa: BLE001 - the page must render without ORT
        return ProviderReport(list(s.onnx_providers), [], "none", _gpu_present(), False,
                              [f"ONNX Runtime is not importable: {exc}"])
    configured = list(s.onnx_providers)
    usable = [p for p in configured if p in available] or ["CPUExecutionProvider"]
    explicit = "AAS_ONNX_PROVIDERS" in os.environ and "CUDAExecutionProvider" in configured
    gpu = _gpu_present()
    rep = ProviderReport(configured, available, usable[0], gpu, explicit or gpu)
    if rep.cuda_missing:
        why = "AAS_ONNX_PROVIDERS asks for CUDA" if explicit else "an NVIDIA GPU is present"
        rep.messages.append(
            f"{why}, but this ONNX Runtime only offers {', '.join(available)}: models run on the CPU "
            "(several times slower). Install `onnxruntime-gpu` matching the CUDA version.")
    return rep


def session_providers(pipe: Pipeline) -> dict[str, list[str]]:
    """Backend name -> providers of its ONNX Runtime session(s), where the backend exposes one."""
    out: dict[str, list[str]] = {}
    for attr in ("person_detector", "face_detector", "enhancer", "embedder"):
        if attr == "person_detector" and pipe.config.flow != "persons":
            continue
        try:
            obj = getattr(pipe, attr)
        except Exception:  # noqa: BLE001 - a backend that fails to load is reported elsewhere
            continue
        if obj is None:
            continue
        found = _find_providers(obj)
        out[getattr(obj, "name", attr)] = found or ["(not ONNX Runtime)"]
    return out


def _find_providers(obj: Any, depth: int = 0) -> list[str]:
    if depth > 2 or obj is None:
        return []
    get = getattr(obj, "get_providers", None)
    if callable(get):
        try:
            return list(get())
        except Exception:  # noqa: BLE001
            return []
    for name in ("session", "_session", "sess", "net", "model", "_model", "detector", "_det"):
        child = getattr(obj, name, None)
        if child is not None and child is not obj:
            found = _find_providers(child, depth + 1)
            if found:
                return found
    return []
