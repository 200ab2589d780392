"""The pipeline configuration from settings: one place for the CLI and the dashboard."""

from __future__ import annotations

from pathlib import Path

from aas_core.config import Settings
from aas_core.vision.profiles import PipelineConfig, resolve_profile


def pipeline_config(settings: Settings, profile: str | None = None,
                    models_dir: Path | None = None) -> tuple[PipelineConfig, list[str]]:
    """The configured (or given) profile resolved against the weights present, with the
    settings' detector confidences and recognition threshold applied.

    A course's own threshold is applied per session by ``SessionService`` (it passes it to
    ``Pipeline.run``), so one loaded pipeline serves every course.
    """
    cfg, notes = resolve_profile(profile or settings.profile, models_dir or settings.models_dir)
    cfg = cfg.with_(face_conf=settings.face_conf, person_conf=settings.person_conf,
                    threshold=settings.recognition_threshold if settings.recognition_threshold is not None
                    else cfg.threshold)
    return cfg, list(notes)
