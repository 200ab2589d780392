"""Seat continuity: students keep their seat during a lecture.

A face that the open-set threshold left "unknown" can still be evidence: if its best match
is student X with a looser score, and X was confidently recognised at the same place in
another snapshot of the same session, X is very likely still sitting there. This recovers
small or badly lit faces that score just under the threshold, without lowering the
threshold for everyone (which would let strangers through). A stranger in X's seat is
only named X if X was there in another snapshot AND X is the stranger's best match AND
the score passes the loose threshold, which keeps that case rare; the instructor reviews
every such "seat" decision (it is recorded as such).

"Confidently recognised" is what the attendance decision itself accepts: a match at or above
the open-set threshold whose similarity also reaches the course's ``min_confidence`` (or a
face named by a person). A match the decision discounts as uncertain must not anchor a seat,
or seat continuity would make present a student the decision has no confident sighting of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aas_core.vision.nms import box_iou


@dataclass(frozen=True)
class Seen:
    """One face observation of a snapshot, as the session stored it."""

    box: tuple[float, float, float, float]
    student: str | None  # assigned by the open-set matcher (None = unknown)
    best: str | None  # top-1 candidate whatever its score
    best_similarity: float
    # similarity of the assignment to ``student``; None = named by a person (always confident)
    similarity: float | None = None


def recover_by_seat(snapshots: Sequence[Sequence[Seen]], loose_threshold: float,
                    min_iou: float = 0.3, min_anchor_similarity: float = 0.0) -> list[dict[str, int]]:
    """For each snapshot: {student: observation index} recovered by seat continuity.

    Only unknown faces are considered; a student already present in that snapshot is never
    added twice, and each face recovers at most one student. Only named faces with a
    similarity >= ``min_anchor_similarity`` (or named by a person) anchor a seat.
    """
    anchors: dict[str, list[np.ndarray]] = {}
    for snap in snapshots:
        for o in snap:
            if o.student and (o.similarity is None or o.similarity >= min_anchor_similarity):
                anchors.setdefault(o.student, []).append(np.asarray(o.box, np.float32))
    out: list[dict[str, int]] = []
    for snap in snapshots:
        present = {o.student for o in snap if o.student}
        found: dict[str, int] = {}
        for i, o in enumerate(snap):
            sid = o.best
            if o.student or not sid or sid in present or sid in found or o.best_similarity < loose_threshold:
                continue
            boxes = anchors.get(sid)
            if boxes and box_iou(np.asarray([o.box], np.float32), np.stack(boxes)).max() >= min_iou:
                found[sid] = i
        out.append(found)
    return out
