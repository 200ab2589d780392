"""Enrollment: photos -> exactly one clear face -> quality gate -> embedding -> stored sample.

Used by ``aas enroll``/``enroll-dir``, the Students page (uploads, webcam, video frames) and
review corrections. Every image gets an outcome with the reason when it is rejected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from aas_core.config import Settings
from aas_core.db import repo
from aas_core.db.embeddings import to_blob
from aas_core.db.models import FaceSample, Student
from aas_core.media.store import ImageStore, discard_on_rollback
from aas_core.vision import quality
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.types import Detections

# A second face this much smaller than the largest is a bystander: keep the largest, warn.
DOMINANT_AREA_RATIO = 2.5
MAX_STORED_SIDE = 1024


@dataclass
class SampleOutcome:
    name: str
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    box: list[float] | None = None
    sample_id: int | None = None

    def line(self) -> str:
        if self.accepted:
            w = f" (warning: {'; '.join(self.warnings)})" if self.warnings else ""
            return f"{self.name}: accepted{w}"
        return f"{self.name}: rejected: {'; '.join(self.reasons)}"


def _pad_for_detection(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Tight, aligned portraits (e.g. 112x112 crops) need a border for detectors to fire."""
    h, w = image.shape[:2]
    if max(h, w) > 400:
        return image, 0
    pad = max(h, w) // 3
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), pad


def find_enrollment_face(image: np.ndarray, pipeline: Pipeline, settings: Settings) -> tuple[Detections | None, list[str], list[str]]:
    """The one face to enroll from a photo, or None with the reason."""
    padded, pad = _pad_for_detection(image)
    det = pipeline.face_detector
    conf = min(pipeline.config.face_conf, settings.enroll_min_det_score)
    faces = det.detect(padded, conf_threshold=conf)
    if pad and len(faces):
        faces = faces.shifted(-pad, -pad)
    if len(faces) == 0:
        return None, ["no face found"], []
    if len(faces) == 1:
        return faces, [], []
    order = np.argsort(-faces.area)
    a0, a1 = faces.area[order[0]], faces.area[order[1]]
    if a0 >= DOMINANT_AREA_RATIO * a1:
        return faces[int(order[0])], [], [f"{len(faces)} faces found; used the largest"]
    return None, [f"{len(faces)} faces of similar size found; upload a photo showing only this student"], []


def assess_and_embed(image: np.ndarray, name: str, pipeline: Pipeline, settings: Settings) -> tuple[SampleOutcome, np.ndarray | None]:
    face, reasons, warnings = find_enrollment_face(image, pipeline, settings)
    if face is None:
        return SampleOutcome(name, False, reasons), None
    thresholds = quality.QualityThresholds(
        min_face_px=settings.enroll_min_face_px, min_blur=settings.enroll_min_blur,
        min_det_score=settings.enroll_min_det_score, max_yaw=settings.enroll_max_yaw)
    report = quality.assess(image, face, thresholds)
    out = SampleOutcome(name, report.accepted, list(report.reasons), warnings, dict(report.figures),
                        [float(v) for v in face.xyxy[0]])
    if not report.accepted:
        return out, None
    return out, pipeline.embedder.embed(image, face)[0]


def enroll_images(s: Session, student: Student, images: Iterable[tuple[str, np.ndarray]], pipeline: Pipeline,
                  store: ImageStore, settings: Settings, *, source: str = "upload", actor: str = "system") -> list[SampleOutcome]:
    """Quality-gate and store each image as a face sample of ``student``.

    Refuses without recorded consent. Only accepted samples are stored (image + embedding).
    """
    if not student.has_consent:
        raise PermissionError(f"student {student.student_number} has not consented to face enrollment")
    outcomes = []
    model = pipeline.embedder.name
    for name, image in images:
        outcome, emb = assess_and_embed(image, name, pipeline, settings)
        if outcome.accepted and emb is not None:
            rel = store.save("samples", _downscale(image))
            discard_on_rollback(s, store, rel)  # a later failure in this transaction leaves no orphan file
            f = outcome.figures
            sample = FaceSample(student_id=student.id, image_path=rel, source=source, accepted=True,
                                face_px=f.get("face_px"), blur=f.get("blur"), det_score=f.get("det_score"),
                                yaw=f.get("yaw"), model_name=model, embedding=to_blob(emb))
            s.add(sample)
            s.flush()
            outcome.sample_id = sample.id
        outcomes.append(outcome)
    accepted = sum(o.accepted for o in outcomes)
    repo.audit(s, actor, "enroll", "student", student.student_number, accepted=accepted,
               rejected=len(outcomes) - accepted, source=source, model=model)
    return outcomes


def _downscale(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = MAX_STORED_SIDE / max(h, w)
    return image if s >= 1 else cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


def ensure_embeddings(url: str, course_code: str, pipeline: Pipeline, store: ImageStore, settings: Settings) -> int:
    """Give every accepted sample of the course roster an embedding from the pipeline's model.

    Samples are stored per (image, model); switching profile re-embeds the stored photos
    once instead of asking students to enroll again. The models run between two short
    transactions (read what is missing, then write the new rows), never inside an open
    write transaction: on SQLite that would hold the database's write lock for as long as
    the models take. Returns how many were added.
    """
    from aas_core.db import session_scope

    model = pipeline.embedder.name
    with session_scope(url) as s:
        todo = []
        for st in repo.roster(s, repo.get_course(s, course_code)):
            have = {x.image_path for x in st.samples if x.model_name == model}
            for x in st.samples:
                if x.accepted and x.image_path and x.image_path not in have:
                    have.add(x.image_path)
                    todo.append(dict(student_id=st.id, image_path=x.image_path, source=x.source, face_px=x.face_px,
                                     blur=x.blur, det_score=x.det_score, yaw=x.yaw))
    rows = []
    for meta in todo:
        try:
            image = store.load(meta["image_path"])
        except FileNotFoundError:
            continue
        face, _, _ = find_enrollment_face(image, pipeline, settings)
        if face is None:
            continue
        rows.append(FaceSample(**meta, accepted=True, model_name=model,
                               embedding=to_blob(pipeline.embedder.embed(image, face)[0])))
    if not rows:
        return 0
    with session_scope(url) as s:
        # Another process may have embedded the same photos meanwhile: add only what is still missing.
        done = set(s.scalars(select(FaceSample.image_path).where(
            FaceSample.model_name == model, FaceSample.image_path.in_([r.image_path for r in rows]))))
        fresh = [r for r in rows if r.image_path not in done]
        s.add_all(fresh)
    return len(fresh)


def delete_sample(s: Session, sample: FaceSample, store: ImageStore, actor: str) -> None:
    """Delete a sample and, when no other model's row uses it, its image file."""
    others = s.scalars(select(FaceSample).where(FaceSample.image_path == sample.image_path,
                                                FaceSample.id != sample.id)).all()
    for o in others:  # the same photo embedded by other models goes too
        s.delete(o)
    store.delete(sample.image_path)
    repo.audit(s, actor, "sample.delete", "student", sample.student.student_number, sample=sample.id)
    s.delete(sample)
