"""Recurring unknown faces: the same unnamed person across a course's sessions.

The unknown faces (no student after matching, seat continuity and corrections) of a course's
last sessions are grouped by face similarity, and a group seen in several sessions is shown to
the instructor as "unknown person seen in 5 of the last 6 sessions" with its best crops. Two
answers: "this is student Y" (:func:`name_cluster`: every face of the group becomes Y's, the
sessions are decided again, and the best crops go through Y's enrollment gates when Y
consented) or "visitor, ignore from now on" (:func:`dismiss_cluster`: the faces are marked
``match_source="visitor"``, and a later group that is mostly such faces is not shown again,
even as it grows with new sightings).

Clustering: average-linkage agglomerative clustering on cosine distance (``scipy.cluster.hierarchy``,
already a dependency; scikit-learn's would add a package for the same algorithm), cut where
faces stop being as similar as the matcher requires of a match (the embedder's calibrated
threshold). Groups are recomputed on every call from the stored observations, so retention
and erasure, which null observation embeddings and delete crops, shrink or dissolve them;
nothing about a cluster is stored but the per-face answers above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sqlalchemy import select

from aas_core.db import repo, session_scope
from aas_core.db.embeddings import from_blob
from aas_core.db.models import ClassSession, FaceObservation, Snapshot, SnapshotStatus
from aas_core.services.auth import AuthUser, require_course
from aas_core.services.enrollment import SampleOutcome, enroll_images
from aas_core.services.sessions import SessionService

#: Unknown faces clustered at most (the most recent first): average linkage is O(n^2) in memory.
MAX_FACES = 3000
VISITOR = "visitor"


@dataclass(frozen=True)
class UnknownCluster:
    """One unknown person: their faces, the sessions they were seen in, the best faces to show."""

    key: int  # the smallest observation id: stable while the group keeps that face
    observation_ids: tuple[int, ...]
    sessions_seen: tuple[int, ...]  # session ids, newest first
    sessions_considered: int  # "seen in 5 of the last 6 sessions": the 6
    best: tuple[int, ...]  # observation ids of the best faces (quality, then detector score)
    last_seen: datetime
    visitor: bool  # mostly faces already dismissed as a visitor

    def describe(self) -> str:
        return f"unknown person seen in {len(self.sessions_seen)} of the last {self.sessions_considered} sessions"


def _groups(emb: np.ndarray, similarity: float) -> np.ndarray:
    if len(emb) == 1:
        return np.ones(1, dtype=int)
    z = linkage(emb, method="average", metric="cosine")
    return fcluster(z, t=1.0 - similarity, criterion="distance")


def recurring_unknowns(url: str, user: AuthUser, course_code: str, similarity: float, *, last_sessions: int = 10,
                       min_sessions: int = 2, include_visitors: bool = False) -> list[UnknownCluster]:
    """Groups of unknown faces seen in at least ``min_sessions`` of the course's last
    ``last_sessions`` decided sessions, most sessions first. ``similarity``: the cosine two faces
    of one person reach (the embedder's calibrated threshold is the natural choice)."""
    if not 0.0 < similarity < 1.0:
        raise ValueError(f"similarity must be in (0, 1), got {similarity}")
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        require_course(user, course)
        sessions = s.execute(select(ClassSession.id, ClassSession.started_at)
                             .where(ClassSession.course_id == course.id)
                             .order_by(ClassSession.started_at.desc(), ClassSession.id.desc())
                             .limit(last_sessions)).all()
        if not sessions:
            return []
        started = dict(sessions)
        rows = s.execute(
            select(FaceObservation.id, Snapshot.session_id, FaceObservation.embedding, FaceObservation.model_name,
                   FaceObservation.quality, FaceObservation.det_score, FaceObservation.match_source)
            .join(Snapshot, Snapshot.id == FaceObservation.snapshot_id)
            .where(Snapshot.session_id.in_(started), Snapshot.status == SnapshotStatus.PROCESSED,
                   FaceObservation.student_id.is_(None), FaceObservation.embedding.is_not(None),
                   FaceObservation.crop_path.is_not(None))
            .order_by(FaceObservation.id.desc()).limit(MAX_FACES)).all()
    if not rows:
        return []
    # One model per comparison: the most common one among the faces (a profile switch mid-term
    # leaves the other model's faces out rather than comparing across models).
    models, counts = np.unique([r.model_name or "" for r in rows], return_counts=True)
    model = models[int(np.argmax(counts))]
    rows = [r for r in rows if (r.model_name or "") == model]
    emb = np.stack([from_blob(r.embedding) for r in rows])
    labels = _groups(emb, similarity)
    out = []
    for label in np.unique(labels):
        members = [rows[i] for i in np.flatnonzero(labels == label)]
        seen = sorted({m.session_id for m in members}, key=lambda sid: started[sid], reverse=True)
        if len(seen) < min_sessions:
            continue
        visitor = sum(m.match_source == VISITOR for m in members) * 2 > len(members)
        if visitor and not include_visitors:
            continue
        best = sorted(members, key=lambda m: (-(m.quality if m.quality is not None else -1.0), -m.det_score))[:4]
        out.append(UnknownCluster(min(m.id for m in members), tuple(sorted(m.id for m in members)), tuple(seen),
                                  len(sessions), tuple(m.id for m in best), started[seen[0]], visitor))
    out.sort(key=lambda c: (-len(c.sessions_seen), -len(c.observation_ids)))
    return out


def _course_unknowns(s, course_id: int, observation_ids: Sequence[int]) -> list[FaceObservation]:  # type: ignore[no-untyped-def]
    obs = s.scalars(select(FaceObservation).join(Snapshot, Snapshot.id == FaceObservation.snapshot_id)
                    .join(ClassSession, ClassSession.id == Snapshot.session_id)
                    .where(FaceObservation.id.in_(list(observation_ids)), ClassSession.course_id == course_id)).all()
    if len(obs) != len(set(observation_ids)):
        raise ValueError("some of these faces are not faces of this course")
    if any(o.student_id is not None for o in obs):
        raise ValueError("some of these faces have been named since: reload the list")
    return list(obs)


def dismiss_cluster(url: str, user: AuthUser, course_code: str, observation_ids: Sequence[int]) -> int:
    """"Visitor, ignore from now on": the faces are marked as a visitor's (audited)."""
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        require_course(user, course)
        obs = _course_unknowns(s, course.id, observation_ids)
        for o in obs:
            o.match_source = VISITOR
        repo.audit(s, user.username, "unknown.visitor", "course", course.code, faces=len(obs))
        return len(obs)


def name_cluster(svc: SessionService, user: AuthUser, course_code: str, observation_ids: Sequence[int],
                 student_number: str, *, best: Sequence[int] = (), add_to_gallery: bool = True
                 ) -> tuple[list[int], list[SampleOutcome]]:
    """"This is student Y": every face becomes Y's (a person's answer, ``match_source="manual"``,
    one face per snapshot: a snapshot where Y was already seen keeps that sighting), the sessions
    concerned are decided again, and with ``add_to_gallery`` the ``best`` faces go through Y's
    enrollment gates, only if Y consented. Returns (sessions re-decided, enrollment outcomes)."""
    with session_scope(svc.url) as s:
        course = repo.get_course(s, course_code)
        require_course(user, course)
        student = repo.get_student(s, student_number)
        if student.id not in {x.id for x in repo.roster(s, course)}:
            raise ValueError(f"{student_number} is not on the roster of {course.code}")
        obs = _course_unknowns(s, course.id, observation_ids)
        taken = set(s.scalars(select(FaceObservation.snapshot_id).where(
            FaceObservation.snapshot_id.in_({o.snapshot_id for o in obs}), FaceObservation.student_id == student.id)))
        sessions: set[int] = set()
        for o in sorted(obs, key=lambda o: -(o.quality or 0.0)):
            if o.snapshot_id in taken:
                continue
            taken.add(o.snapshot_id)
            o.student_id, o.match_source = student.id, "manual"
            o.similarity = next((float(v) for t, v in (o.top_matches or []) if t == student_number), None)
            sessions.add(o.snapshot.session_id)
        repo.audit(s, user.username, "unknown.named", "course", course.code, student=student_number,
                   faces=len(obs), sessions=sorted(sessions))
        consent = student.has_consent
        crops = [o.crop_path for o in obs if o.id in set(best) and o.crop_path]
    outcomes: list[SampleOutcome] = []
    if add_to_gallery and crops:
        if not consent:
            outcomes = [SampleOutcome("unknown person's face", False, [f"{student_number} has not consented to enrollment"])]
        else:
            with session_scope(svc.url) as s:
                outcomes = enroll_images(s, repo.get_student(s, student_number),
                                         [(f"face {i + 1} of the unknown person", svc.store.load(p))
                                          for i, p in enumerate(crops)],
                                         svc.pipeline, svc.store, svc.settings, source="correction",
                                         actor=user.username)
    for sid in sorted(sessions):
        svc.finalize(sid, actor=user.username)
    return sorted(sessions), outcomes
