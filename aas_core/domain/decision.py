"""The attendance decision of one session, as a pure step: sightings in, statuses out.

The session service loads the evidence (which snapshots were usable, which roster student
each face was matched to, with what similarity) and writes the records this returns; it
never rewrites the evidence to reach a decision. Students are keyed by their student
number everywhere in this step (the one key of the service layer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aas_core.domain.attendance import RuleConfig, Status, decide_all

__all__ = ["Sighting", "StudentDecision", "decide_session", "session_evidence"]


@dataclass(frozen=True)
class Sighting:
    """A face in snapshot ``snapshot`` (0-based) named as ``student`` with ``similarity``;
    ``None`` = named by a person (an instructor's correction), which no threshold overrules."""

    snapshot: int
    student: str
    similarity: float | None
    # Named by seat continuity (under the open-set threshold): the review is told when a status
    # rests on such sightings alone (``domain.abstention``). Not read by ``decide_session``.
    by_seat: bool = False
    # Where the sighting comes from: "camera" (a face in the snapshot) or "self_check_in" (the
    # student checked in from a phone for this snapshot, ``services.checkin``; its similarity is
    # the 1:1 selfie check's). It counts like any sighting; not read by ``decide_session``.
    source: str = "camera"


@dataclass(frozen=True)
class StudentDecision:
    status: Status
    presence: list[bool | None]  # per scheduled snapshot: seen / not seen / no usable snapshot
    best_similarity: float | None


def decide_session(n_snapshots: int, usable: Iterable[int], sightings: Iterable[Sighting], roster: Sequence[str],
                   rules: RuleConfig) -> dict[str, StudentDecision] | None:
    """Every roster student's status; ``None`` when no snapshot is usable ("no data", never
    "everybody absent").

    Per snapshot a student counts as present with their best similarity in it; the course's
    ``rules.min_confidence`` then treats weaker sightings as no evidence (``attendance.decide``).
    A student whose every sighting was too uncertain has no evidence either way and is
    ``absent`` for review (the presence column shows the uncertainty).
    """
    usable = {k for k in usable if 0 <= k < n_snapshots}
    if not usable:
        return None
    presence, confidence, best = session_evidence(n_snapshots, usable, sightings, roster)
    decided = decide_all(presence, rules, confidence)
    out = {}
    for st in roster:
        sims = [best[(st, k)] for k in range(n_snapshots) if (st, k) in best and confidence[st][k] is not None]
        out[st] = StudentDecision(decided[st] or Status.ABSENT, presence[st], max(sims) if sims else None)
    return out


def session_evidence(n_snapshots: int, usable: Iterable[int], sightings: Iterable[Sighting], roster: Sequence[str]
                     ) -> tuple[dict[str, list[bool | None]], dict[str, list[float | None]], dict[tuple[str, int], float]]:
    """Per roster student: presence and confidence per snapshot (what ``attendance.decide`` reads),
    and the best similarity per (student, snapshot) seen."""
    usable = {k for k in usable if 0 <= k < n_snapshots}
    best: dict[tuple[str, int], float] = {}
    by_hand: set[tuple[str, int]] = set()
    for x in sightings:
        if x.snapshot in usable:
            key = (x.student, x.snapshot)
            if x.similarity is None:
                by_hand.add(key)
            best[key] = max(best.get(key, 0.0), x.similarity or 0.0)
    presence: dict[str, list[bool | None]] = {}
    confidence: dict[str, list[float | None]] = {}
    for st in roster:
        presence[st] = [((st, k) in best) if k in usable else None for k in range(n_snapshots)]
        # no confidence value = kept whatever min_confidence says (attendance.usable_presence)
        confidence[st] = [None if (st, k) in by_hand else best.get((st, k)) for k in range(n_snapshots)]
    return presence, confidence, best
