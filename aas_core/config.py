"""Settings: one typed place for every knob, read from ``AAS_*`` env vars and an optional ``.env``.

Secrets (database passwords in URLs, camera credentials) come from the environment or
``.streamlit/secrets.toml``; they are never written to logs (see ``redact_url``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from aas_core.media.decode import DEFAULT_MAX_PIXELS
from aas_core.redact import redact_url  # noqa: F401 - re-exported: callers import it from here

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """All AAS settings. Env var = ``AAS_`` + field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="AAS_", env_file=".env", extra="ignore")

    # --- storage -------------------------------------------------------------------------
    database_url: str = Field(
        default="sqlite:///data/aas.db",
        description="SQLAlchemy URL. MySQL/MariaDB: mysql+pymysql://user:pw@host:3306/aas",
    )
    data_dir: Path = Field(default=Path("data"), description="Stored images (samples, snapshots, crops).")
    models_dir: Path = Field(default=Path("models"), description="Model weights + manifest.toml.")

    # --- pipeline --------------------------------------------------------------------------
    profile: str = Field(default="auto", description="accurate | fast | offline | auto (best present).")
    person_conf: float = Field(default=0.35, ge=0, le=1, description="Person detector confidence.")
    face_conf: float = Field(default=0.5, ge=0, le=1, description="Face detector confidence.")
    min_face_px: int = Field(default=20, ge=4, description="Faces smaller than this (shorter side) are dropped.")
    recognition_threshold: float | None = Field(
        default=None, description="Open-set cosine threshold; None = the embedder's calibrated default."
    )
    onnx_providers: list[str] = Field(
        default_factory=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="ONNX Runtime providers in order of preference (missing ones are skipped).",
    )

    # --- enrollment quality gate -----------------------------------------------------------
    enroll_min_face_px: int = Field(default=40, description="Enrollment: smallest face side in px.")
    enroll_min_blur: float = Field(default=15.0, description="Enrollment: min Laplacian variance on the face.")
    enroll_min_det_score: float = Field(default=0.6, description="Enrollment: min detector score.")
    enroll_max_yaw: float = Field(default=0.6, description="Enrollment: max |yaw| estimate from landmarks (0..1).")

    # --- capture plan defaults (seconds) ---------------------------------------------------
    snapshots: int = Field(default=3, ge=1, le=10)
    first_after_s: float = Field(default=300.0, description="First snapshot at start + t1.")
    second_after_s: float = Field(default=1800.0, description="Second snapshot a further t2 later.")
    session_length_s: float = Field(default=3000.0, description="Class length; last snapshot is random before end.")
    light_settle_s: float = Field(default=1.0, description="Wait after switching the light on.")

    cameras: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named cameras (JSON in AAS_CAMERAS, or [cameras.NAME] tables in .streamlit/secrets.toml): "
                    "{'room101': {'kind': 'ipwebcam', 'url': 'http://10.0.0.5:8080', 'password': '...'}}",
    )
    capture_window_s: float = Field(default=60.0, description="Retry a failing camera this long per snapshot.")

    # --- images ----------------------------------------------------------------------------
    max_image_pixels: int = Field(default=DEFAULT_MAX_PIXELS, description="Refuse images larger than this.")
    max_upload_bytes: int = Field(default=30_000_000)
    retention_days: int = Field(default=180, description="Snapshots/crops older than this are purged.")

    # --- enrollment uploads (one request of the Students page) --------------------------------
    max_upload_files: int = Field(default=20, ge=1, description="Photos enrolled per upload; the rest are skipped.")
    max_upload_pixels: int = Field(default=200_000_000, ge=1,
                                   description="Decoded pixels per upload, all photos together; the rest are skipped.")

    # --- dashboard sign-in (server-side sessions, aas_core.services.auth) ------------------------
    session_idle_minutes: float = Field(default=60.0, gt=0,
                                        description="A signed-in browser with no page run for this long is signed out.")
    session_max_hours: float = Field(default=12.0, gt=0,
                                     description="Every sign-in ends after this long, in use or not.")
    session_cookie_secure: str = Field(
        default="auto", pattern="^(auto|always|never)$",
        description="Secure flag of the session cookie: auto = over HTTPS and on localhost (browsers treat "
                    "loopback as secure); always behind a TLS-terminating proxy; never only for plain-HTTP tests.")

    # --- detection schedule (fast profile) -----------------------------------------------------
    find_face_px: float = Field(
        default=20.0, gt=0,
        description="Detection schedule: the smallest face (px at 1080 lines; 40 px at 4K) that must be found. "
                    "Smaller = more pixels per frame = slower.",
    )

    def resolved(self, p: Path) -> Path:
        return p if p.is_absolute() else (Path.cwd() / p)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
