"""Per-course configuration: one typed tree, stored in ``Course.config`` and read everywhere.

A setting means one thing everywhere: the Courses page, ``aas course config``, the CLI's
session commands and the session service all read and write this model, never a dict. Every
model forbids unknown keys and bounds every field, so a typo or an impossible value is
refused with the field's message when written (page, CLI) and when read back from the
database (``db.types.PydanticJSON``).

Plan, offsets and seed live here too (``PlanConfig.schedule``, ``draw_seed``,
``SessionPlan``), so the snapshot count is worked out in one place.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aas_core.domain.attendance import RuleConfig
from aas_core.domain.plans import CapturePlan

__all__ = ["PlanConfig", "RecognitionConfig", "CourseConfig", "SessionPlan", "ConfigError", "draw_seed",
           "settable_keys", "camera_session_plan"]

_FORBID = ConfigDict(extra="forbid", frozen=True)
DAY_S = 24 * 3600.0


class ConfigError(ValueError):
    """A course setting that does not exist or does not validate (message names the field)."""


class PlanConfig(BaseModel):
    """When the snapshots of a session are taken, in seconds from the session start."""

    model_config = _FORBID

    snapshots: int = Field(default=3, ge=1, le=10, description="Snapshots per session.")
    first_after_s: float = Field(default=300.0, ge=0, le=DAY_S, description="First snapshot this long after the start.")
    second_after_s: float = Field(default=1800.0, ge=0, le=DAY_S, description="The next one this much later.")
    session_length_s: float = Field(default=3000.0, gt=0, le=DAY_S, description="Length of the class.")
    margin_s: float = Field(default=60.0, ge=0, le=3600.0,
                            description="The random last snapshot keeps this far from the others and the end.")

    @model_validator(mode="after")
    def _times_fit(self) -> PlanConfig:
        self.capture_plan()  # ValueError with the numbers (in minutes and seconds) when they do not fit
        return self

    def capture_plan(self) -> CapturePlan:
        return CapturePlan(n=self.snapshots, first_after_s=self.first_after_s, second_after_s=self.second_after_s,
                           session_length_s=self.session_length_s, margin_s=self.margin_s)

    def schedule(self, seed: int) -> list[float]:
        """Offsets in seconds; the same plan and seed always give the same list."""
        return self.capture_plan().schedule(seed)

    @classmethod
    def from_settings(cls, settings: Any) -> PlanConfig:
        """The installation's defaults (``AAS_SNAPSHOTS``, ``AAS_FIRST_AFTER_S``, ...) for new courses."""
        return cls(snapshots=settings.snapshots, first_after_s=settings.first_after_s,
                   second_after_s=settings.second_after_s, session_length_s=settings.session_length_s)


class RecognitionConfig(BaseModel):
    """The course's open-set threshold; ``None`` = the embedder's calibrated default."""

    model_config = _FORBID

    threshold: float | None = Field(default=None, ge=0.0, le=1.0,
                                    description="Cosine similarity a face needs to be named.")
    model: str | None = Field(default=None, max_length=100, description="Embedder the threshold was calibrated for.")
    source: str | None = Field(default=None, max_length=200, description="Who or what set it.")


class CourseConfig(BaseModel):
    """Everything a course decides about its sessions."""

    model_config = _FORBID

    plan: PlanConfig = Field(default_factory=PlanConfig)
    rules: RuleConfig = Field(default_factory=RuleConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    camera: str | None = Field(default=None, min_length=1, max_length=100,
                               description="Name of the room's camera in AAS_CAMERAS / [cameras.NAME] of the "
                                           "secrets file (its secrets stay there).")

    @classmethod
    def for_new_course(cls, settings: Any) -> CourseConfig:
        return cls(plan=PlanConfig.from_settings(settings))

    @classmethod
    def parse(cls, data: Mapping[str, Any] | CourseConfig | None) -> CourseConfig:
        """Validate stored or submitted data; ``ConfigError`` names every bad field."""
        if isinstance(data, CourseConfig):
            return data
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            raise ConfigError(_messages(exc)) from None

    def with_values(self, **sections: Any) -> CourseConfig:
        """A copy with whole sections or fields replaced, validated (``ConfigError`` if not)."""
        data = self.model_dump(mode="json")
        for key, value in sections.items():
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json")
            data[key] = value
        return CourseConfig.parse(data)

    def with_settings(self, assignments: Iterable[str]) -> CourseConfig:
        """Apply ``KEY=VALUE`` strings (``plan.snapshots=5``, ``rules.min_confidence=0.5``,
        ``camera=room101``); VALUE is read as JSON when it parses, else as text."""
        data = self.model_dump(mode="json")
        known = settable_keys()
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep:
                raise ConfigError(f"{item!r}: write KEY=VALUE, e.g. plan.snapshots=5")
            if key not in known:
                raise ConfigError(f"unknown setting {key!r}; settable: {', '.join(known)}")
            node = data
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = _value(raw.strip())
        return CourseConfig.parse(data)

    @property
    def threshold(self) -> float | None:
        return self.recognition.threshold


def settable_keys() -> list[str]:
    """Every leaf key of ``CourseConfig`` in dotted form, in declaration order."""
    out = []
    for name, field in CourseConfig.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += [f"{name}.{leaf}" for leaf in sub.model_fields]
        else:
            out.append(name)
    return out


class SessionPlan(BaseModel):
    """What one session was asked to capture (``ClassSession.capture_plan``), fixed at its start.

    ``snapshots`` is the one snapshot count every step uses (capture, resume, decision,
    review); ``offsets_s`` the schedule for camera sessions (``None`` for given images).
    """

    model_config = _FORBID

    snapshots: int = Field(ge=1, le=100)
    source: Literal["camera", "upload", "images"] = "images"
    offsets_s: list[float] | None = Field(default=None, max_length=100)
    plan: PlanConfig | None = None
    camera: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _offsets_match(self) -> SessionPlan:
        if self.offsets_s is not None and len(self.offsets_s) != self.snapshots:
            raise ValueError(f"{len(self.offsets_s)} offsets for {self.snapshots} snapshots")
        return self

    @classmethod
    def for_camera(cls, offsets_s: list[float], camera: str | None, plan: PlanConfig | None = None) -> SessionPlan:
        return cls(snapshots=len(offsets_s), source="camera", offsets_s=[float(o) for o in offsets_s], plan=plan,
                   camera=camera)

    @classmethod
    def for_images(cls, n: int, source: str = "images") -> SessionPlan:
        return cls(snapshots=n, source="upload" if source == "upload" else "images")


def draw_seed() -> int:
    """The seed of a session's random last snapshot: unpredictable, stored with the session."""
    return random.SystemRandom().randrange(2**31)


def camera_session_plan(plan: PlanConfig, seed: int, camera: str | None, *, now: bool = False,
                        offsets_s: list[float] | None = None, spacing_s: float = 3.0) -> SessionPlan:
    """The one place a camera session's schedule is worked out (CLI, page, resume).

    ``offsets_s`` given: exactly those; ``now``: the course's snapshot count right away,
    ``spacing_s`` apart (demos); else the course's plan with this seed.
    """
    if offsets_s:
        return SessionPlan.for_camera(list(offsets_s), camera)
    if now:
        return SessionPlan.for_camera([spacing_s * i for i in range(plan.snapshots)], camera)
    return SessionPlan.for_camera(plan.schedule(seed), camera, plan=plan)


def _value(raw: str) -> Any:
    if raw.lower() in ("", "none", "null", "default"):
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _messages(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
