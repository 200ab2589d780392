"""Abstain instead of guessing: "could not tell" and the students a person must look at.

``decision.decide_session`` reads every analysed snapshot without a student's sighting as
"not there". That is wrong when the snapshot holds a face too poor to identify (tiny, dark,
blurred, turned away) that could be that student: the honest answer is "could not tell".
This step, pure like the decision it wraps:

* An **unclear face** is an unknown face (no student after the open-set threshold and seat
  continuity) whose quality is under the cut (``vision.face_quality.POOR_QUALITY``; the
  service decides which faces are unclear). A good face that matches nobody is a stranger,
  as before, and changes nothing here. A face the matcher found **too close to call**
  between students (``tie``: ``vision.matching.too_close_to_call``) is unclear whatever its
  quality, and each of those near-equal students could be it.
* The students an unclear face in snapshot k **could be**: roster students *not seen* in k
  that are among its top candidates with a similarity at or above the loose floor, or whose
  seat (a box where they were confidently seen in another snapshot of the session) it
  occupies (``same_seat``). Their presence in k becomes ``None`` instead of ``False``, which the attendance
  rules skip (``attendance.decide``).
* Abstention only ever *removes* evidence: no ``True`` is added, so a student never seen is
  still ``absent``. A student whose every snapshot is "could not tell" has no evidence and is
  stored ``absent`` with a review note (the conservative status; the review lists them
  first). And skipping a snapshot can never lift an ``absent`` status to a present one (with
  ``min_present_fraction`` fewer usable snapshots could): such a student stays ``absent``,
  flagged.
* **Needs review**: every student with a "could not tell" snapshot, and every student whose
  status rests on seat continuity alone (it differs from the status without seat sightings).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from aas_core.domain.attendance import RuleConfig, Status, decide
from aas_core.domain.decision import Sighting, StudentDecision, decide_session, session_evidence

__all__ = ["SessionDecision", "Unclear", "could_not_tell", "decide_with_abstention"]

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Unclear:
    """An unknown face too poor to identify, in snapshot ``snapshot`` (0-based)."""

    snapshot: int
    box: Box
    candidates: tuple[tuple[str, float], ...]  # top matches, best first, whatever their score
    why: str  # e.g. "size 24 px, dark": what made it too poor (for the reviewer)
    # A face the matcher named but a standing correction vetoed (services.corrections): its
    # candidates are the vetoed student alone, who could be it whatever the loose floor says.
    vetoed: bool = False
    # A face too close to call between students (vision.matching.too_close_to_call): its
    # candidates are those near-equal students, each of whom could be it whatever the floor says.
    tie: bool = False


@dataclass
class SessionDecision:
    """Statuses (as ``decide_session``) and, per student, why a person should look at them."""

    students: dict[str, StudentDecision]
    needs_review: dict[str, list[str]] = field(default_factory=dict)


def _iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def same_seat(face: Box, seat: Box, min_iou: float) -> bool:
    """``face`` sits in ``seat``: they overlap enough, or the face's centre lies inside the seat
    (a poor face is often found as a smaller box than the same person's good one, which IoU
    alone would call another place)."""
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    return _iou(face, seat) >= min_iou or (seat[0] <= cx <= seat[2] and seat[1] <= cy <= seat[3])


def could_not_tell(usable: Iterable[int], sightings: Iterable[Sighting], unclear: Iterable[Unclear],
                   roster: Sequence[str], seats: Mapping[str, Sequence[tuple[int, Box]]],
                   loose_floor: float | None, min_iou: float = 0.3) -> dict[str, dict[int, str]]:
    """``{student: {snapshot: reason}}``: the snapshots where an unclear face could be the student.

    ``seats``: per student, ``(snapshot, box)`` where they were *confidently* seen (the open-set
    threshold or a person; never seat continuity). ``loose_floor``: the least similarity a
    candidate needs (None: candidates by seat only).
    """
    usable = set(usable)
    on_roster = set(roster)
    seen: dict[int, set[str]] = {}
    for x in sightings:
        seen.setdefault(x.snapshot, set()).add(x.student)
    out: dict[str, dict[int, str]] = {}
    for u in unclear:
        k = u.snapshot
        if k not in usable:
            continue
        here = seen.get(k, set())
        could: dict[str, str] = {}
        if u.vetoed or u.tie:
            for st, _sim in u.candidates:
                if st in on_roster and st not in here:
                    could.setdefault(st, "")
        elif loose_floor is not None:
            for st, sim in u.candidates:
                if st in on_roster and st not in here and sim >= loose_floor:
                    could.setdefault(st, f"top match {sim:.2f}")
        for st, places in seats.items():
            if st in on_roster and st not in here and st not in could and any(
                    j != k and same_seat(u.box, box, min_iou) for j, box in places):
                could[st] = "it sits in this student's seat"
        for st, how in could.items():
            out.setdefault(st, {}).setdefault(
                k, f"could not tell in snapshot {k + 1}: {u.why}" if u.vetoed or u.tie else
                f"could not tell in snapshot {k + 1}: a face of poor quality ({u.why}) could be this student ({how})")
    return out


def decide_with_abstention(n_snapshots: int, usable: Iterable[int], sightings: Iterable[Sighting],
                           roster: Sequence[str], rules: RuleConfig, *, unclear: Iterable[Unclear] = (),
                           seats: Mapping[str, Sequence[tuple[int, Box]]] | None = None,
                           loose_floor: float | None = None, min_iou: float = 0.3) -> SessionDecision | None:
    """``decide_session`` with "could not tell" snapshots skipped and the review list; ``None``
    when no snapshot is usable (as ``decide_session``)."""
    usable = list(usable)
    sightings = list(sightings)
    base = decide_session(n_snapshots, usable, sightings, roster, rules)
    if base is None:
        return None
    unsure = could_not_tell(usable, sightings, unclear, roster, seats or {}, loose_floor, min_iou)
    presence, confidence, _ = session_evidence(n_snapshots, usable, sightings, roster)
    out = dict(base)
    review: dict[str, list[str]] = {}
    for st, where in unsure.items():
        p = list(presence[st])
        for k in where:
            if p[k] is False:  # only "not seen" becomes "could not tell"; a sighting stays a sighting
                p[k] = None
        notes = [where[k] for k in sorted(where)]
        status = decide(p, rules, confidence[st])
        if status is None:
            notes.append("no snapshot could tell: stored absent until a person decides")
            status = Status.ABSENT
        elif base[st].status == Status.ABSENT and status != Status.ABSENT:
            # Fewer usable snapshots must not lift "absent" (e.g. under min_present_fraction).
            notes.append(f"would be {status.value} without the snapshots that could not tell: kept absent")
            status = Status.ABSENT
        out[st] = replace(base[st], status=status, presence=p)
        review[st] = notes
    by_seat = [x for x in sightings if x.by_seat]
    if by_seat:
        without = decide_session(n_snapshots, usable, [x for x in sightings if not x.by_seat], roster, rules)
        for x in sorted(by_seat, key=lambda x: x.snapshot):
            if without is not None and without[x.student].status != out[x.student].status:
                review.setdefault(x.student, []).append(
                    f"named by seat continuity only in snapshot {x.snapshot + 1} (similarity "
                    f"{x.similarity or 0:.2f}, under the threshold): the status rests on it "
                    f"({without[x.student].status.value} without it)")
    return SessionDecision(out, {st: review[st] for st in sorted(review)})
