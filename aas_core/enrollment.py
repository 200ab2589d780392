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
from aas_core.storage import ImageStore, discard_on_rollback
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


def ensure_embeddings(s: Session, students: Iterable[Student], pipeline: Pipeline, store: ImageStore,
                      settings: Settings) -> int:
    """Give every accepted sample an embedding from the pipeline's current model.

    Samples are stored per (image, model); switching profile re-embeds the stored photos
    once instead of asking students to enroll again. Returns how many were added.
    """
    model = pipeline.embedder.name
    added = 0
    for st in students:
        have = {x.image_path for x in st.samples if x.model_name == model}
        todo = {x.image_path: x for x in st.samples if x.accepted and x.image_path and x.image_path not in have}
        for rel, src in todo.items():
            try:
                image = store.load(rel)
            except FileNotFoundError:
                continue
            face, _, _ = find_enrollment_face(image, pipeline, settings)
            if face is None:
                continue
            emb = pipeline.embedder.embed(image, face)[0]
            s.add(FaceSample(student_id=st.id, image_path=rel, source=src.source, accepted=True,
                             face_px=src.face_px, blur=src.blur, det_score=src.det_score, yaw=src.yaw,
                             model_name=model, embedding=to_blob(emb)))
            added += 1
    s.flush()
    return added


def delete_sample(s: Session, sample: FaceSample, store: ImageStore, actor: str) -> None:
    """Delete a sample and, when no other model's row uses it, its image file."""
    others = s.scalars(select(FaceSample).where(FaceSample.image_path == sample.image_path,
                                                FaceSample.id != sample.id)).all()
    for o in others:  # the same photo embedded by other models goes too
        s.delete(o)
    store.delete(sample.image_path)
    repo.audit(s, actor, "sample.delete", "student", sample.student.student_number, sample=sample.id)
    s.delete(sample)
