"""Settings: one typed place for every knob, read from ``AAS_*`` env vars and an optional ``.env``.

Secrets (database passwords in URLs, camera credentials) come from the environment or
``.streamlit/secrets.toml``; they are never written to logs (see ``redact_url``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
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

    # --- distributed processing (Celery; aas_core/tasks) -------------------------------------
    broker_url: str | None = Field(
        default=None,
        description="Celery broker: amqp://user:pw@host:5672/vhost (RabbitMQ) or redis://host:6379/0. "
                    "Set: snapshots are captured/processed by `aas worker` processes; unset: in this process.",
    )
    broker_visibility_timeout_s: float = Field(
        default=600.0, gt=0,
        description="Redis broker only: a task unacknowledged this long is delivered again (a worker that died "
                    "mid-task); must exceed the longest task (a capture waits up to capture_window_s).",
    )

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

    # --- e-mail notices (at-risk digest and student notices; services.notify) ----------------
    # Password: AAS_SMTP_PASSWORD or [smtp] password in .streamlit/secrets.toml, never the database.
    smtp_host: str | None = Field(default=None, description="SMTP server; unset = notices cannot be sent.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="587 submission (STARTTLS), 465 TLS, 25 relay.")
    smtp_from: str | None = Field(default=None, max_length=254, description="Sender address of the notices.")
    smtp_user: str | None = Field(default=None, description="SMTP login (optional).")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password (optional).")
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls", description="starttls (refuses a server without it), ssl (implicit TLS), none.")
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=300)
    public_url: str | None = Field(default=None, description="Address of the dashboard, for links in e-mails "
                                                             "(e.g. https://aas.school.edu).")
    # Keys the check-in codes and the opt-out links (HMAC); unset: a random key per server process
    # (check-in still works in the one dashboard process; e-mails then carry no opt-out link).
    secret_key: SecretStr | None = Field(default=None, description="At least 32 random characters.")

    # --- Moodle (mod_attendance web services; services.moodle) -------------------------------
    moodle_url: str | None = Field(default=None, description="Moodle's base URL, e.g. https://moodle.school.edu")
    moodle_token: SecretStr | None = Field(default=None, description="Web service token ([moodle] token in the "
                                                                     "secrets file).")
    moodle_timeout_s: float = Field(default=30.0, gt=0, le=300)

    def resolved(self, p: Path) -> Path:
        return p if p.is_absolute() else (Path.cwd() / p)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


#: The Streamlit secrets file (git-ignored); cameras, SMTP, Moodle and the secret key may live here.
SECRETS_FILE = Path(".streamlit/secrets.toml")

#: ``[section] key`` of the secrets file -> setting, for the settings that may hold secrets.
_FROM_SECRETS_FILE = {
    ("smtp", "host"): "smtp_host", ("smtp", "port"): "smtp_port", ("smtp", "from"): "smtp_from",
    ("smtp", "user"): "smtp_user", ("smtp", "password"): "smtp_password", ("smtp", "security"): "smtp_security",
    ("moodle", "url"): "moodle_url", ("moodle", "token"): "moodle_token",
    (None, "secret_key"): "secret_key", (None, "public_url"): "public_url",
}


def with_secrets_file(settings: Settings, secrets_file: Path = SECRETS_FILE) -> Settings:
    """``settings`` completed from ``[smtp]``, ``[moodle]`` and top-level ``secret_key`` / ``public_url``
    of the secrets file; a value set in the environment (or passed in) wins, as for cameras."""
    if not secrets_file.is_file():
        return settings
    import tomllib

    with secrets_file.open("rb") as fh:
        data = tomllib.load(fh)
    update: dict[str, Any] = {}
    for (section, key), field in _FROM_SECRETS_FILE.items():
        table = data if section is None else data.get(section)
        if isinstance(table, dict) and key in table and field not in settings.model_fields_set:
            update[field] = table[key]
    if not update:
        return settings
    # Validated like the environment would be (a bad port in the file is refused, not used).
    return Settings.model_validate({**settings.model_dump(include=settings.model_fields_set), **update})
