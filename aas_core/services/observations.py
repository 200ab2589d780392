"""Face observations: the one mapping from a ``PipelineResult`` to stored rows, the seat-continuity
identity step, and the sightings the attendance decision reads.

Students are keyed by student number in the service layer (the gallery's ids, the decision's
keys, ``top_matches``); the database id is looked up here, once, when a row is written or read.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import cv2
import numpy as np
from sqlalchemy import inspect, insert, select
from sqlalchemy.orm import Session

from aas_core.db.embeddings import to_blob
from aas_core.db.limits import FieldTooLong, too_long
from aas_core.db.models import FaceObservation, Snapshot, SnapshotStatus, Student
from aas_core.domain.abstention import Unclear
from aas_core.domain.continuity import Seen, recover_by_seat
from aas_core.domain.decision import Sighting
from aas_core.media.store import ImageStore
from aas_core.services.privacy import black_out
from aas_core.vision.face_quality import FaceQuality
from aas_core.vision.matching import MIN_LEAD, Gallery
from aas_core.vision.pipeline import PipelineResult

# Crops of faces smaller than this are stored upscaled so reviewers can see them.
MIN_STORED_CROP = 96


#: ``match_source`` of unknown faces a correction speaks about: "vetoed" (a standing correction
#: vetoed the matcher's name), "rejected" (a person said "that face is not X") and "visitor" (a
#: person said the recurring unknown is a visitor, ``services.unknowns``).
CORRECTED = ("vetoed", "rejected", "visitor")
#: ``match_source`` of a face the matcher found too close to call between two students
#: (``vision.matching.too_close_to_call``): stored unknown, its students "could not tell".
AMBIGUOUS = "ambiguous"


def viewable_crop(crop: np.ndarray | None) -> np.ndarray | None:
    """A face crop large enough for a reviewer to see (evidence only; never embedded).

    None stays None: the crop of a withheld face (:func:`withhold_suppressed`) is not stored.
    """
    if crop is None:
        return None
    h, w = crop.shape[:2]
    if min(h, w) >= MIN_STORED_CROP or min(h, w) == 0:
        return crop
    s = MIN_STORED_CROP / min(h, w)
    return cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)


def student_ids(s: Session, numbers: set[str]) -> dict[str, int]:
    """Student number -> database id for the numbers given."""
    if not numbers:
        return {}
    return dict(s.execute(select(Student.student_number, Student.id).where(Student.student_number.in_(numbers))).all())


def withhold_suppressed(result: PipelineResult, suppressed: Gallery | None, store: ImageStore,
                        snapshot_rel: str, image: np.ndarray) -> set[int]:
    """Withhold the faces of students whose consent went during this session.

    ``suppressed``: the session's starting gallery restricted to students who have since
    withdrawn consent or been erased (``SessionService.recognition``). A face whose best score
    against it reaches the recognition threshold, and beats its best score against the current
    gallery (a look-alike who still consents keeps their match), is withheld: its crops are
    dropped from ``result`` (so they are never written), its match cleared, and it is blacked
    out in the stored snapshot ``snapshot_rel`` with the rule erasure uses. Its row then keeps
    only the box (:func:`observation_rows` with ``withheld``). Returns the withheld face indices.
    """
    if suppressed is None or not len(suppressed) or not len(result.faces):
        return set()
    best = suppressed.scores(result.embeddings, model_name=result.model_name).max(axis=1)
    m = result.match
    current = [float(m.top_similarity[i][0]) if m is not None and len(m.top_similarity[i]) else -1.0
               for i in range(len(result.faces))]
    hidden = {i for i in range(len(result.faces)) if best[i] >= result.threshold and best[i] >= current[i]}
    if not hidden:
        return hidden
    for i in hidden:
        result.crops.crops[i] = None  # type: ignore[call-overload]
        result.crops.enhanced[i] = None
        if m is not None:
            m.assigned[i] = None  # the caller's "recognised" counts and drawings leave it out too
    # The stored JPEG was written before processing (it is the evidence); redact it now, from the
    # frame as captured so the rest of the picture loses no quality to a second JPEG round.
    redacted = image.copy()
    black_out(redacted, [tuple(float(v) for v in result.faces.xyxy[i]) for i in sorted(hidden)])
    store.overwrite(snapshot_rel, redacted, quality=95)
    return hidden


def observation_rows(result: PipelineResult, ids: dict[str, int], crop_paths: Sequence[str | None],
                     enhanced_paths: Sequence[str | None], withheld: Collection[int] = (),
                     qualities: Sequence[FaceQuality | None] = (),
                     vetoed: Collection[int] = (), ambiguous: Collection[int] = ()) -> list[FaceObservation]:
    """One ``FaceObservation`` per face of ``result`` (``ids``: student number -> id).

    Faces in ``withheld`` (:func:`withhold_suppressed`) keep only their box and detector score:
    no crop, no embedding, no match, no top-match list, no quality. ``qualities``: per face
    (``vision.face_quality.measure_all``), stored as ``quality`` and ``quality_figures``.
    ``vetoed``: faces whose match a standing correction vetoed (``vision.matching.veto_by_negatives``):
    stored unknown with ``match_source="vetoed"`` (their top matches kept for the review).
    ``ambiguous``: faces too close to call between two students (``vision.matching.too_close_to_call``):
    stored unknown with ``match_source="ambiguous"``, top matches kept.

    A face is named only when its assigned similarity reaches the threshold the match ran
    with: the matcher guarantees it, and this keeps it true whatever matcher produced the
    result (no student is ever made present by a match under the open-set threshold here;
    seat continuity is the one reviewed exception, :func:`apply_seat_continuity`).
    """
    m = result.match
    rows = []
    for i in range(len(result.faces)):
        x1, y1, x2, y2 = (float(v) for v in result.faces.xyxy[i])
        if i in withheld:
            rows.append(FaceObservation(x1=x1, y1=y1, x2=x2, y2=y2, det_score=float(result.faces.confidence[i]),
                                        source=str(result.faces.source[i]), model_name=result.model_name))
            continue
        number = m.assigned[i] if m else None
        # In float32 as the matcher compares (a score equal to the threshold passes); NaN fails.
        if number is not None and not np.float32(m.assigned_similarity[i]) >= np.float32(m.threshold):
            number = None
        top = ([[t, round(float(v), 4)] for t, v in zip(m.top_ids[i], m.top_similarity[i]) if t is not None]
               if m else None)
        close = i in ambiguous  # the caller may already have cleared its assignment
        if close:
            number = None
        veto = number is not None and i in vetoed
        if veto and top is not None:
            # The vetoed student leads the list (almost always already first; the one-to-one
            # assignment can give a face its second-best): the review and the decision read it there.
            top = [[number, round(float(m.assigned_similarity[i]), 4)], *(e for e in top if e[0] != number)]
        if veto:
            number = None
        q = qualities[i] if i < len(qualities) else None
        rows.append(FaceObservation(
            x1=x1, y1=y1, x2=x2, y2=y2, det_score=float(result.faces.confidence[i]),
            source=str(result.faces.source[i]), crop_path=crop_paths[i], enhanced_path=enhanced_paths[i],
            model_name=result.model_name, embedding=to_blob(result.embeddings[i]),
            student_id=ids.get(number) if number else None,
            similarity=float(m.assigned_similarity[i]) if m and number else None,
            match_source="threshold" if number else ("vetoed" if veto else (AMBIGUOUS if close else None)),
            top_matches=top,
            quality=q.score if q is not None else None, quality_figures=q.as_json() if q is not None else None))
    return rows


def insert_rows(s: Session, snapshot_id: int, rows: Sequence[FaceObservation]) -> None:
    """Insert the rows of :func:`observation_rows` for one snapshot in one batched statement.

    A flush of the objects would send one INSERT per face (the ORM groups consecutive rows by
    the columns they set, and named and unknown faces alternate); this is one executemany (one
    round trip on MariaDB, whose drivers send it as a multi-row INSERT). Text lengths are
    checked as every ORM flush checks them (``db.limits``). The rows stay out of ``s``.
    """
    if not rows:
        return
    problems = [p for row in rows for p in too_long(row)]
    if problems:
        raise FieldTooLong("; ".join(dict.fromkeys(problems)))
    cols = [(a.key, a.columns[0].key) for a in inspect(FaceObservation).column_attrs
            if a.key not in ("id", "snapshot_id")]
    table = FaceObservation.__table__
    # Core, every row with the same keys: one executemany (the ORM's bulk insert still splits
    # rows by which values are None). A None top-match list is stored as JSON null.
    s.execute(insert(table), [{"snapshot_id": snapshot_id, **{c: getattr(row, k) for k, c in cols}}
                              for row in rows])


def snapshot_info(result: PipelineResult, profile: str) -> dict[str, Any]:
    return {"timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}, "faces": len(result.faces),
            "model": result.model_name, "threshold": result.threshold, "profile": profile}


def apply_seat_continuity(snaps: Sequence[Snapshot | None], numbers_by_id: dict[int, str],
                          ids_by_number: dict[str, int], loose_threshold: float | None,
                          min_confidence: float = 0.0) -> None:
    """Name unknown faces by seat continuity (``domain.continuity``); idempotent.

    This is the identity step before the decision: it only fills ``student_id`` of faces the
    open-set threshold left unknown (``match_source="seat"``), recomputed from scratch each time.
    ``min_confidence``: the course rule (``RuleConfig.min_confidence``); a match the decision
    discounts as uncertain anchors no seat (else seat continuity alone could make a student
    present whom the decision has no confident sighting of).
    """
    if loose_threshold is None:
        return
    usable = [x for x in snaps if x is not None and x.status == SnapshotStatus.PROCESSED]
    obs = [list(x.observations) for x in usable]
    # A face a correction vetoed, or a person said is not its match ("rejected"), is never named
    # by seat: its top match is exactly the student it was corrected away from.
    # Nor is a face too close to call: its top match is one of two near-equal students.
    asked = (*CORRECTED, AMBIGUOUS)
    seen = [[Seen((o.x1, o.y1, o.x2, o.y2), numbers_by_id.get(o.student_id) if o.match_source != "seat" else None,
                  o.top_matches[0][0] if o.top_matches and o.match_source not in asked else None,
                  float(o.top_matches[0][1]) if o.top_matches and o.match_source not in asked else 0.0,
                  None if o.match_source == "manual" else o.similarity) for o in snap_obs] for snap_obs in obs]
    for snap_obs, found in zip(obs, recover_by_seat(seen, loose_threshold, min_anchor_similarity=min_confidence)):
        for o in snap_obs:
            if o.match_source == "seat":
                o.student_id, o.similarity, o.match_source = None, None, None
        for number, i in found.items():
            if number in ids_by_number:
                o = snap_obs[i]
                o.student_id = ids_by_number[number]
                o.similarity = float(o.top_matches[0][1])
                o.match_source = "seat"


def sightings(snaps: Sequence[Snapshot | None], numbers_by_id: dict[int, str]) -> list[Sighting]:
    """What the decision reads: every named face of the processed snapshots."""
    out = []
    for snap in snaps:
        if snap is None or snap.status != SnapshotStatus.PROCESSED:
            continue
        for o in snap.observations:
            number = numbers_by_id.get(o.student_id) if o.student_id is not None else None
            if number is not None:
                out.append(Sighting(snap.index, number, None if o.match_source == "manual" else o.similarity,
                                    by_seat=o.match_source == "seat"))
    return out


def abstention_evidence(snaps: Sequence[Snapshot | None], numbers_by_id: dict[int, str], poor_quality: float,
                        min_confidence: float = 0.0
                        ) -> tuple[list[Unclear], dict[str, list[tuple[int, tuple[float, float, float, float]]]]]:
    """What ``domain.abstention`` reads: the unknown faces of quality under ``poor_quality`` (with
    their candidates and what made them poor), and where each student was confidently seen
    (named by the threshold with a similarity >= ``min_confidence``, or by a person; never by
    seat continuity). Faces without a stored quality (before migration 0006) are never unclear.
    """
    unclear: list[Unclear] = []
    seats: dict[str, list[tuple[int, tuple[float, float, float, float]]]] = {}
    for snap in snaps:
        if snap is None or snap.status != SnapshotStatus.PROCESSED:
            continue
        for o in snap.observations:
            box = (o.x1, o.y1, o.x2, o.y2)
            number = numbers_by_id.get(o.student_id) if o.student_id is not None else None
            if number is not None:
                if o.match_source == "manual" or (o.match_source != "seat" and (o.similarity or 0.0) >= min_confidence):
                    seats.setdefault(number, []).append((snap.index, box))
            elif o.match_source == "vetoed" and o.top_matches:
                # The matcher named X but the face is closer to a face a person said is not X:
                # "could not tell" for X in this snapshot, so a person looks (never a presence).
                x, sim = o.top_matches[0]
                unclear.append(Unclear(snap.index, box, ((str(x), float(sim)),),
                                       f"a face matched to this student ({float(sim):.2f}) looks more like a "
                                       f"face an instructor corrected as not them", vetoed=True))
            elif o.match_source == AMBIGUOUS and o.top_matches:
                # Students within a hair of each other: each of them could be it, whatever the
                # face's quality (the lead the matcher needs is MIN_LEAD).
                top = float(o.top_matches[0][1])
                tied = tuple((str(t), float(v)) for t, v in o.top_matches if top - float(v) < MIN_LEAD)
                close = ", ".join(f"{t} {v:.2f}" for t, v in tied)
                unclear.append(Unclear(snap.index, box, tied, f"a face too close to call between {close}", tie=True))
            elif o.match_source in ("rejected", "visitor"):
                continue  # a person already answered for this face; nothing to guess
            elif o.quality is not None and o.quality < poor_quality and o.embedding is not None:
                q = FaceQuality.from_json(o.quality, o.quality_figures or {})
                why = q.describe() or f"quality {o.quality:.2f}"
                unclear.append(Unclear(snap.index, box, tuple((str(t), float(v)) for t, v in o.top_matches or []),
                                       why))
    return unclear, seats
