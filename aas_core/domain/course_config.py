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

import itertools
import json
import random
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aas_core.domain.attendance import RuleConfig, Status
from aas_core.domain.plans import CapturePlan

__all__ = ["PlanConfig", "RecognitionConfig", "CourseConfig", "SessionPlan", "ConfigError", "draw_seed",
           "settable_keys", "camera_session_plan", "AtRiskConfig", "MoodleConfig", "StatusMap", "CheckInConfig"]

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
    # A snapshot is a short burst: consecutive frames share the room but not the sensor noise or
    # a student's motion blur, so fusing them names faces one frame alone leaves unknown.
    # Rows stored before these fields existed load with the defaults (they are plain JSON).
    burst_frames: int = Field(default=5, ge=1, le=10, description="Frames taken for each snapshot (1 = one photo).")
    burst_interval_s: float = Field(default=0.4, ge=0.05, le=2.0, description="Time between the frames of a burst.")

    @model_validator(mode="after")
    def _times_fit(self) -> PlanConfig:
        self.capture_plan()  # ValueError with the numbers (in minutes and seconds) when they do not fit
        span, gap = self.burst_span_s, self.shortest_gap_s()
        if span > gap:
            raise ValueError(f"a burst of {self.burst_frames} frames {self.burst_interval_s:g} s apart lasts "
                             f"{span:g} s, longer than the {gap:g} s before the next snapshot or the end; "
                             "lower plan.burst_frames or plan.burst_interval_s, or space the snapshots more")
        return self

    @property
    def burst_span_s(self) -> float:
        """Seconds from the first frame of a burst to its last (0 for single photos)."""
        return (self.burst_frames - 1) * self.burst_interval_s

    def shortest_gap_s(self) -> float:
        """The shortest time the plan guarantees after a snapshot (before the next, or the end).

        A zero ``margin_s`` guarantees nothing between the middle and the random last snapshot
        (they may coincide, see ``CapturePlan.schedule``; the runner then takes the second
        late), so it is not a gap a burst could be checked against.
        """
        gaps = []
        if self.snapshots == 1:
            gaps.append(self.session_length_s - self.first_after_s)
        elif self.snapshots == 2:
            gaps.append(self.second_after_s + self.margin_s)
        else:
            gaps.append(self.second_after_s / (self.snapshots - 2))
        if self.snapshots >= 2 and self.margin_s > 0:
            gaps.append(self.margin_s)  # the last one keeps this far from the one before and the end
        return min(gaps)

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
    classroom_templates: bool = Field(
        default=True, description="Also match against the enrollment photos rendered as the room camera sees "
                                  "them (small, dim, noisy), with their own calibrated threshold.")


class AtRiskConfig(BaseModel):
    """When a student counts as at risk, and who is told (``domain.at_risk``, ``aas notify at-risk``)."""

    model_config = _FORBID

    threshold: float = Field(default=0.75, ge=0.0, le=1.0,
                             description="At risk below this share of sessions attended (0.75 = 75 %).")
    last_sessions: int = Field(default=6, ge=1, le=100, description="Over the course's last N decided sessions.")
    min_sessions: int = Field(default=3, ge=1, le=100,
                              description="No notice before a student has this many records in that window.")
    partial_credit: float = Field(default=1.0, ge=0.0, le=1.0,
                                  description="What a late or left-early session counts for: 1 = attended (as on "
                                              "Home and Trends), 0.5 = half a session, 0 = absent.")
    notify_instructor: bool = Field(default=True, description="Send the instructor the weekly digest.")
    notify_students: bool = Field(default=False, description="Also send each at-risk student a notice.")

    @model_validator(mode="after")
    def _window_fits(self) -> AtRiskConfig:
        if self.min_sessions > self.last_sessions:
            raise ValueError(f"min_sessions ({self.min_sessions}) cannot exceed last_sessions ({self.last_sessions})")
        return self


class StatusMap(BaseModel):
    """AAS status -> acronym of a status of the Moodle attendance activity.

    The defaults are the four statuses every new mod_attendance activity starts with: P(resent),
    L(ate), E(xcused), A(bsent). Leaving early is partial attendance, as being late is: "L".
    """

    model_config = _FORBID

    attended: str = Field(default="P", min_length=1, max_length=20)
    late: str = Field(default="L", min_length=1, max_length=20)
    left_early: str = Field(default="L", min_length=1, max_length=20)
    absent: str = Field(default="A", min_length=1, max_length=20)

    def acronym(self, status: Status | str) -> str:
        return str(getattr(self, Status(status).value))


class MoodleConfig(BaseModel):
    """Where the course's attendance goes in Moodle (``services.moodle``). URL and token are not
    here: they are secrets of the installation (``AAS_MOODLE_URL`` / ``AAS_MOODLE_TOKEN``)."""

    model_config = _FORBID

    attendance_id: int | None = Field(default=None, ge=1,
                                      description="Instance id of the course's Attendance activity in Moodle.")
    user_field: Literal["idnumber", "username", "email"] = Field(
        default="idnumber", description="The Moodle user field that holds the AAS student id.")
    status_map: StatusMap = Field(default_factory=StatusMap,
                                  description="AAS status -> acronym of a status of the Moodle activity.")
    match_window_min: float = Field(default=60.0, ge=1.0, le=720.0,
                                    description="An AAS session goes to the Moodle session starting at most this "
                                                "many minutes from it.")


class CheckInConfig(BaseModel):
    """Self check-in from a phone (``services.checkin``): code on the room's screen, then a selfie."""

    model_config = _FORBID

    threshold_margin: float = Field(default=0.10, ge=0.02, le=0.5,
                                    description="The selfie needs the course's recognition threshold plus this "
                                                "(stricter than matching in the room).")
    max_attempts: int = Field(default=5, ge=1, le=20,
                              description="Failed tries (code or selfie) a student gets per check-in window.")
    window_min: float = Field(default=10.0, ge=1.0, le=180.0, description="How long a check-in window stays open.")
    selfie_within_s: float = Field(default=120.0, ge=30.0, le=600.0,
                                   description="After a right code, the selfie must follow within this time.")


class CourseConfig(BaseModel):
    """Everything a course decides about its sessions."""

    model_config = _FORBID

    plan: PlanConfig = Field(default_factory=PlanConfig)
    rules: RuleConfig = Field(default_factory=RuleConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    camera: str | None = Field(default=None, min_length=1, max_length=100,
                               description="Name of the room's camera in AAS_CAMERAS / [cameras.NAME] of the "
                                           "secrets file (its secrets stay there).")
    # Rows stored before these sections existed load with the defaults (plain JSON).
    at_risk: AtRiskConfig = Field(default_factory=AtRiskConfig)
    moodle: MoodleConfig = Field(default_factory=MoodleConfig)
    check_in: CheckInConfig = Field(default_factory=CheckInConfig)

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
    # check_in: an online lecture without a camera; its snapshots are the check-in windows held
    # (services.checkin.start_online_session).
    source: Literal["camera", "upload", "images", "check_in"] = "images"
    offsets_s: list[float] | None = Field(default=None, max_length=100)
    plan: PlanConfig | None = None
    camera: str | None = Field(default=None, max_length=100)
    # The burst the session captures with, fixed at its start like the schedule (a course
    # setting changed mid-lecture does not change it). Sessions stored before bursts existed
    # took one photo per snapshot: the defaults say so.
    burst_frames: int = Field(default=1, ge=1, le=10)
    burst_interval_s: float = Field(default=0.4, ge=0.05, le=2.0)

    @model_validator(mode="after")
    def _offsets_match(self) -> SessionPlan:
        if self.offsets_s is not None and len(self.offsets_s) != self.snapshots:
            raise ValueError(f"{len(self.offsets_s)} offsets for {self.snapshots} snapshots")
        return self

    @classmethod
    def for_camera(cls, offsets_s: list[float], camera: str | None, plan: PlanConfig | None = None, *,
                   burst_frames: int = 1, burst_interval_s: float = 0.4) -> SessionPlan:
        return cls(snapshots=len(offsets_s), source="camera", offsets_s=[float(o) for o in offsets_s], plan=plan,
                   camera=camera, burst_frames=burst_frames, burst_interval_s=burst_interval_s)

    @classmethod
    def for_check_in(cls, n: int) -> SessionPlan:
        return cls(snapshots=n, source="check_in")

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
    ``spacing_s`` apart (demos); else the course's plan with this seed. Every variant takes
    the course's burst.
    """
    burst = {"burst_frames": plan.burst_frames, "burst_interval_s": plan.burst_interval_s}
    span = plan.burst_span_s
    if offsets_s:
        # An explicit schedule is checked here, not by the plan: a burst that ran into the next
        # snapshot would make it late, or missing when the one after is due too.
        gaps = [b - a for a, b in itertools.pairwise(offsets_s)]
        if gaps and min(gaps) < span:
            raise ValueError(f"snapshots {min(gaps):g} s apart cannot each take a burst of {plan.burst_frames} "
                             f"frames {plan.burst_interval_s:g} s apart ({span:g} s); space them more or lower "
                             "plan.burst_frames")
        return SessionPlan.for_camera(list(offsets_s), camera, **burst)
    if now:
        spacing_s = max(spacing_s, span + 1.0)  # a burst and a second to spare between demo snapshots
        return SessionPlan.for_camera([spacing_s * i for i in range(plan.snapshots)], camera, **burst)
    return SessionPlan.for_camera(plan.schedule(seed), camera, plan=plan, **burst)


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
