"""Temporal attendance rules: from "was the student seen in snapshot i?" to a status.

Pure functions, no I/O: the pipeline decides *who is in each snapshot*; this module decides
*what that means* for the course's attendance record. Keeping it pure makes every presence
pattern testable exhaustively and lets instructors re-run the decision with different rules
after the fact (the raw sightings stay in the database).

Vocabulary
----------
``presence`` is one entry per scheduled snapshot, in time order:

* ``True``  -- the student was recognised in that snapshot;
* ``False`` -- the snapshot exists and was analysed, the student was not in it;
* ``None``  -- no usable evidence: the snapshot is missing (camera failure, runner not
  running) or the match was too uncertain (see ``RuleConfig.min_confidence``). A ``None``
  is *skipped*: the decision is made on the remaining snapshots, as if the missing one had
  never been scheduled. It is never read as "absent", because a broken camera must not make
  a whole class absent.

Default rules (``RuleConfig()``), applied to the usable snapshots only:

* never seen                                 -> ``absent``
* seen in the first and in the last snapshot -> ``attended`` (gaps of up to
  ``tolerate_gaps`` consecutive misses in between are ignored: a student bent over a
  notebook is often not recognised once)
* not seen in the first, seen in the last    -> ``late``
* seen in the first, not seen in the last    -> ``left_early``
* seen only in between (missed the first *and* the last, e.g. ``010``) -> ``middle_only``,
  default ``left_early`` (see ``RuleConfig.middle_only`` for why)
* seen first and last but missing for more than ``tolerate_gaps`` consecutive snapshots in
  between (e.g. ``1001`` with the default tolerance 1) -> ``interrupted``, default
  ``left_early`` (they left during class; coming back does not undo that)
* a late arrival that also has such a long gap (e.g. ``01001``) is treated like
  ``middle_only``: both faults apply.
* finally, if ``min_present_fraction`` > 0 and the student was seen in fewer than that
  fraction of the usable snapshots, the result is ``absent``.

All snapshots missing -> ``None`` ("no data"), so the UI can show that instead of "absent".

For N = 3 with default rules::

    111 attended   101 attended   011 late   001 late
    110 left_early 100 left_early 010 left_early (middle_only)   000 absent
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Status", "RuleConfig", "decide", "decide_all", "usable_presence"]


class Status(StrEnum):
    """Attendance status of one student for one session (stored as its string value)."""

    ATTENDED = "attended"
    LATE = "late"
    LEFT_EARLY = "left_early"
    ABSENT = "absent"


class RuleConfig(BaseModel):
    """Per-course attendance rules; JSON round-trip via ``to_dict()`` / ``from_dict(d)``
    (= ``model_dump(mode="json")`` / ``model_validate``). Unknown keys are rejected so a
    typo in a stored config fails loudly instead of silently using a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tolerate_gaps: int = Field(
        default=1,
        ge=0,
        description=(
            "Longest run of consecutive misses between two sightings that still counts as "
            "continuous presence. 1 = a single missed snapshot in the middle is forgiven "
            "(recognition is not perfect: heads down, occlusion)."
        ),
    )
    middle_only: Status = Field(
        default=Status.LEFT_EARLY,
        description=(
            "Status when the student was seen only between the first and the last snapshot "
            "(came late AND left early, e.g. 010). Default left_early: the student was in "
            "the room, so 'absent' would contradict the evidence, and 'attended' would "
            "reward missing both ends; of the two faults, leaving before the end is the one "
            "an instructor most needs to see (it is the more severe status and the most "
            "recent fact). Courses that require presence at both ends can set 'absent'."
        ),
    )
    interrupted: Status = Field(
        default=Status.LEFT_EARLY,
        description=(
            "Status when the student was seen at the start and at the end but missing for "
            "more than `tolerate_gaps` consecutive snapshots in between (left and came back)."
        ),
    )
    min_present_fraction: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "If > 0: a student seen in fewer than this fraction of the usable snapshots is "
            "'absent' whatever the pattern (e.g. 0.5 = must be seen in at least half). "
            "0 disables the check."
        ),
    )
    min_confidence: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "A sighting whose match confidence is below this counts as 'no evidence' (like "
            "a missing snapshot), not as present and not as absent: an uncertain match "
            "should neither give credit nor take it away. 0 disables the check."
        ),
    )


    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RuleConfig:
        """Rules from a stored JSON dict (``None``/``{}`` -> defaults); ``ValidationError``
        on unknown keys or bad values."""
        return cls.model_validate(dict(data or {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (statuses as strings) that ``from_dict`` reads back."""
        return self.model_dump(mode="json")


_DEFAULT_RULES = RuleConfig()


def usable_presence(
    presence: Sequence[bool | None],
    confidence: Sequence[float | None] | None = None,
    min_confidence: float = 0.0,
) -> list[bool | None]:
    """Presence with uncertain sightings (confidence < ``min_confidence``) turned into ``None``.

    A ``False`` is never changed: "not seen" carries no confidence. A ``True`` without a
    confidence value is kept (the pipeline already applied its own threshold).
    """
    if confidence is None or min_confidence <= 0.0:
        return list(presence)
    if len(confidence) != len(presence):
        raise ValueError(
            f"confidence has {len(confidence)} entries for {len(presence)} snapshots"
        )
    out: list[bool | None] = []
    for seen, conf in zip(presence, confidence, strict=True):
        if seen is True and conf is not None and conf < min_confidence:
            out.append(None)
        else:
            out.append(seen)
    return out


def _as_presence(presence: Sequence[bool | None]) -> list[bool | None]:
    """Validate entries (numpy bools from the pipeline are accepted and converted)."""
    out: list[bool | None] = []
    for i, p in enumerate(presence):
        if p is None:
            out.append(None)
        elif isinstance(p, (bool, np.bool_)):
            out.append(bool(p))
        else:  # 0/1 or "yes" would silently mean something: refuse instead
            raise TypeError(f"presence[{i}] must be True, False or None, got {p!r}")
    return out


def _longest_inner_gap(seen: Sequence[bool]) -> int:
    """Longest run of ``False`` strictly between the first and the last ``True``."""
    first = seen.index(True)
    last = len(seen) - 1 - seen[::-1].index(True)
    longest = run = 0
    for s in seen[first : last + 1]:
        run = 0 if s else run + 1
        longest = max(longest, run)
    return longest


def decide(
    presence: Sequence[bool | None],
    rules: RuleConfig | None = None,
    confidence: Sequence[float | None] | None = None,
) -> Status | None:
    """Attendance status from per-snapshot presence (see the module docstring for the rules).

    Returns ``None`` when no snapshot is usable (all missing/uncertain): "no data" is a
    different fact from "absent" and the caller must be able to tell them apart.
    """
    rules = rules or _DEFAULT_RULES
    values = usable_presence(_as_presence(presence), confidence, rules.min_confidence)
    seen = [v for v in values if v is not None]
    if not seen:
        return None
    n_seen = sum(seen)
    if n_seen == 0:
        return Status.ABSENT
    if rules.min_present_fraction > 0 and n_seen / len(seen) < rules.min_present_fraction:
        return Status.ABSENT

    arrived_late = not seen[0]
    left_early = not seen[-1]
    gap_too_long = _longest_inner_gap(seen) > rules.tolerate_gaps

    if arrived_late and (left_early or gap_too_long):
        return rules.middle_only
    if arrived_late:
        return Status.LATE
    if left_early:
        return Status.LEFT_EARLY
    if gap_too_long:
        return rules.interrupted
    return Status.ATTENDED


def decide_all(
    presence_by_student: Mapping[str, Sequence[bool | None]],
    rules: RuleConfig | None = None,
    confidence_by_student: Mapping[str, Sequence[float | None]] | None = None,
) -> dict[str, Status | None]:
    """``decide`` for every student; keys are kept as given (student ids)."""
    confidence_by_student = confidence_by_student or {}
    return {
        student: decide(presence, rules, confidence_by_student.get(student))
        for student, presence in presence_by_student.items()
    }
