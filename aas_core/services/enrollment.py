"""Enrollment: photos -> exactly one clear face -> quality gate -> embedding -> checks -> stored sample.

Used by ``aas enroll``/``enroll-dir``, the Students page (uploads, webcam, video frames) and
review corrections. Every image gets an outcome: ``accepted`` (stored, used for recognition),
``pending`` (stored, held for an instructor's review, not used) or ``rejected`` (not stored),
with the reason.

Gallery poisoning (a student enrolling a classmate's face to be marked present for them) is
checked here, for every caller: a photo that is a copy of any stored sample is refused; a
photo unlike the student's accepted photos, or more like another enrolled student, is held;
a student's own first photos are held until an instructor or admin accepts them (nothing yet
proves whose face they show).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import imagehash
import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from aas_core.config import Settings
from aas_core.db import repo
from aas_core.db.embeddings import from_blob, to_blob
from aas_core.db.models import FaceSample, FaceTemplate, Role, SampleStatus, Student
from aas_core.media.store import ImageStore, discard_on_rollback
from aas_core.vision import quality
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.templates import DEFAULT_VIEWS, classroom_embeddings, classroom_scale
from aas_core.vision.types import Detections

# A second face this much smaller than the largest is a bystander: keep the largest, warn.
DOMINANT_AREA_RATIO = 2.5
MAX_STORED_SIDE = 1024
#: A stored sample photo's face is the detection whose embedding is this close to the stored one
#: (the same face re-detected in the re-encoded photo scores ~0.95-1.0; another person < 0.5).
SAME_FACE_COS = 0.8
#: A photo this much wider than tall (or taller than wide) is not a portrait; detectors given
#: e.g. a 50000 x 8 strip fail or find nonsense, so it is refused before they run.
MAX_ASPECT_RATIO = 8.0
#: Perceptual hash: 16 x 16 DCT bits (256). On faces_dev (aligned 112 px faces, 53 people) the
#: 64-bit phash put 7.5 % of *different* photos of the same person within 6 bits, while the
#: 256-bit one keeps them >= 8 bits apart (all but one pair >= 12) and re-encoded / resized
#: copies (JPEG q40-70, WebP, PNG, 80-300 px) within 10 (99.97 %).
PHASH_SIZE = 16
DUPLICATE_MAX_BITS = 10

log = logging.getLogger(__name__)


@dataclass
class SampleOutcome:
    """What became of one photo. ``accepted`` is true only for a sample used for recognition;
    ``status`` says accepted / pending (stored, held for review) / rejected (not stored) and
    ``reasons`` why it is not accepted."""

    name: str
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    box: list[float] | None = None
    sample_id: int | None = None
    status: str = ""
    # the detected face (box, landmarks) the embedding came from; not part of the report
    face: Detections | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = SampleStatus.ACCEPTED.value if self.accepted else SampleStatus.REJECTED.value
        self.status = SampleStatus(self.status).value
        self.accepted = self.status == SampleStatus.ACCEPTED

    @property
    def pending(self) -> bool:
        return self.status == SampleStatus.PENDING

    def hold(self, reason: str) -> None:
        self.status, self.accepted = SampleStatus.PENDING.value, False
        self.reasons.append(reason)

    def reject(self, reason: str) -> None:
        self.status, self.accepted = SampleStatus.REJECTED.value, False
        self.reasons.append(reason)

    def line(self) -> str:
        if self.accepted:
            w = f" (warning: {'; '.join(self.warnings)})" if self.warnings else ""
            return f"{self.name}: accepted{w}"
        if self.pending:
            return f"{self.name}: held for review: {'; '.join(self.reasons)}"
        return f"{self.name}: rejected: {'; '.join(self.reasons)}"


def image_hashes(image: np.ndarray) -> tuple[str, str]:
    """(sha256 of the decoded pixels, 256-bit perceptual hash) of a BGR image, both hex.

    The pixels, not the file bytes: the same photo arrives as bytes (uploads), as a decoded
    array (webcam, video, review crops) or from disk (CLI), and is compared the same way.
    """
    img = np.ascontiguousarray(image)
    sha = hashlib.sha256(f"{img.shape}|{img.dtype}|".encode() + img.tobytes()).hexdigest()
    # imagehash shrinks to 64 x 64 anyway; shrinking a 50 MP photo first keeps it cheap.
    h, w = img.shape[:2]
    scale = 256 / max(h, w)
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return sha, str(imagehash.phash(Image.fromarray(gray), hash_size=PHASH_SIZE))


def phash_distance(a: str, b: str) -> int:
    """Hamming distance of two hex perceptual hashes (different lengths: never near)."""
    if len(a) != len(b):
        return 1 << 30
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _odd_shape(image: np.ndarray) -> str | None:
    h, w = image.shape[:2]
    if max(h, w) > MAX_ASPECT_RATIO * min(h, w):
        return f"{w}x{h} pixels is not a portrait photo (one side is more than {MAX_ASPECT_RATIO:.0f}x the other)"
    return None


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
                        [float(v) for v in face.xyxy[0]], face=face)
    if not report.accepted:
        return out, None
    return out, pipeline.embedder.embed(image, face)[0]


class ConsentWithdrawn(PermissionError):
    """Consent was withdrawn (or the student erased) while their photos were being enrolled."""


@dataclass
class _Checks:
    """What a new photo is compared against: every stored sample's hashes (any student, any
    status) and every accepted embedding of consenting students made by the same model."""

    hashes: list[tuple[int, str | None, str | None]]  # (student id, sha256, phash)
    ids: list[int]
    embeddings: list[np.ndarray]

    @classmethod
    def load(cls, s: Session, model: str) -> _Checks:
        ids, g = repo.identity_gallery(s, model)
        return cls([(st, sha, ph) for _, st, sha, ph in repo.sample_hashes(s)], list(ids),
                   [_unit(e) for e in g] if len(ids) else [])

    def duplicate(self, student_id: int, sha: str, ph: str) -> str | None:
        for owner, k_sha, k_ph in self.hashes:
            if k_sha == sha or (k_ph and phash_distance(ph, k_ph) <= DUPLICATE_MAX_BITS):
                # Another student's photo is never named: the uploader may be a student.
                whose = "this student" if owner == student_id else "another student"
                return f"duplicate: the same photo (or a resized / re-saved copy) is already stored for {whose}"
        return None

    def identity(self, student_id: int, emb: np.ndarray, threshold: float) -> tuple[str | None, float | None]:
        """Why the photo must be held (None: it looks like this student), and own best similarity."""
        if not self.ids:
            return None, None
        sims = np.stack(self.embeddings) @ _unit(emb)
        mine = np.array(self.ids) == student_id
        own = float(sims[mine].max()) if mine.any() else None
        other = float(sims[~mine].max()) if (~mine).any() else None
        if other is not None and other >= threshold and (own is None or other > own):
            versus = f"{other:.2f} >= {threshold:.2f}" if own is None else f"{other:.2f} vs {own:.2f} to this student"
            return f"looks more like another enrolled student (similarity {versus})", own
        if own is not None and own < threshold:
            return f"does not look like this student's accepted photos (similarity {own:.2f} < {threshold:.2f})", own
        return None, own

    def add(self, student_id: int, sha: str, ph: str, emb: np.ndarray | None) -> None:
        self.hashes.append((student_id, sha, ph))
        if emb is not None:
            self.ids.append(student_id)
            self.embeddings.append(_unit(emb))


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _consent_still_given(s: Session, student: Student) -> bool:
    """Re-read the student's consent with the row locked (MariaDB: ``FOR UPDATE`` waits for a
    withdrawal or erasure in flight and sees its commit; SQLite ignores it, see ``_store``)."""
    row = s.execute(select(Student.consent_given_at).where(Student.id == student.id).with_for_update()).first()
    return row is not None and row[0] is not None


def _store(s: Session, student: Student, image: np.ndarray, outcome: SampleOutcome, emb: np.ndarray, *,
           store: ImageStore, source: str, model: str, sha: str, ph: str, added_by: Role) -> FaceSample:
    """Write the photo and its row, but only while the student still consents.

    A withdrawal (or erasure) committed between the upload's consent check and this point
    would otherwise leave a sample behind that nothing deletes. The check runs before the
    file is written and again after the row is flushed: on SQLite the first read may run
    before this transaction holds the database's write lock (the ``FOR UPDATE`` is a no-op
    there), the second runs under it, so no withdrawal can commit in between.
    """
    if not _consent_still_given(s, student):
        raise ConsentWithdrawn(f"consent of {student.student_number} was withdrawn during enrollment; "
                               "no photo was stored")
    rel = store.save("samples", _downscale(image))
    discard_on_rollback(s, store, rel)  # a later failure in this transaction leaves no orphan file
    f = outcome.figures
    sample = FaceSample(student_id=student.id, image_path=rel, source=source, status=SampleStatus(outcome.status),
                        reject_reason="; ".join(outcome.reasons)[:500] or None,
                        face_px=f.get("face_px"), blur=f.get("blur"), det_score=f.get("det_score"), yaw=f.get("yaw"),
                        model_name=model, embedding=to_blob(emb), content_sha256=sha, phash=ph,
                        added_by=added_by.value)
    s.add(sample)
    s.flush()
    if not _consent_still_given(s, student):
        store.delete(rel)
        raise ConsentWithdrawn(f"consent of {student.student_number} was withdrawn during enrollment; "
                               "no photo was stored")
    return sample


FIRST_PHOTOS_HELD = "first photos uploaded by the student: held until an instructor or admin accepts them"


def enroll_images(s: Session, student: Student, images: Iterable[tuple[str, np.ndarray | Exception]],
                  pipeline: Pipeline, store: ImageStore, settings: Settings, *, source: str = "upload",
                  actor: str = "system", added_by: Role | str = Role.INSTRUCTOR,
                  each: Callable[[SampleOutcome, np.ndarray | Exception], None] | None = None) -> list[SampleOutcome]:
    """Quality-gate, check and store each image as a face sample of ``student``.

    ``images`` is consumed one item at a time (pass a generator that decodes lazily: only
    one decoded photo is alive at once); an item whose image is an exception (e.g. an
    ``ImageError`` from decoding) becomes a rejected outcome with its message. ``each`` is
    called with every outcome and its image while the image is still alive (thumbnails).

    ``added_by`` is the role of who adds the photos: ``student`` photos wait for review until
    the student has accepted photos to compare with; the default is staff (the CLI and
    review corrections, which require an instructor or admin). Refuses without recorded
    consent; ``ConsentWithdrawn`` (nothing of the transaction is kept) if consent is
    withdrawn while the photos are processed. Rejected photos are not stored.
    """
    if not student.has_consent:
        raise PermissionError(f"student {student.student_number} has not consented to face enrollment")
    added_by = Role(added_by)
    outcomes = []
    model = pipeline.embedder.name
    threshold = float(pipeline.threshold)
    checks = _Checks.load(s, model)

    def one(name: str, image: np.ndarray | Exception) -> SampleOutcome:
        if isinstance(image, Exception):
            return SampleOutcome(name, False, [str(image).removeprefix(f"{name}: ")])
        odd = _odd_shape(image)
        if odd:
            return SampleOutcome(name, False, [odd])
        try:
            outcome, emb = assess_and_embed(image, name, pipeline, settings)
        except cv2.error as exc:  # OpenCV failing on one strange image must not cost the rest of the batch
            log.warning("enrollment of %s failed in OpenCV: %s", name, exc)
            return SampleOutcome(name, False, ["the photo could not be processed (image error)"])
        if not outcome.accepted or emb is None:
            return outcome
        sha, ph = image_hashes(image)
        dup = checks.duplicate(student.id, sha, ph)
        if dup:
            outcome.reject(dup)
            return outcome
        held, own = checks.identity(student.id, emb, threshold)
        if held:
            outcome.hold(held)
        elif own is None and added_by == Role.STUDENT:
            outcome.hold(FIRST_PHOTOS_HELD)
        if own is not None:
            outcome.figures["similarity"] = round(own, 4)
        outcome.sample_id = _store(s, student, image, outcome, emb, store=store, source=source, model=model,
                                   sha=sha, ph=ph, added_by=added_by).id
        checks.add(student.id, sha, ph, emb if outcome.accepted else None)
        _add_classroom_templates(s, outcome.sample_id, image, outcome.face, pipeline)
        return outcome

    for name, image in images:
        outcomes.append(one(name, image))
        if each is not None:
            each(outcomes[-1], image)
        del image  # otherwise still bound while the generator decodes the next photo: two alive at once
    counts = {st.value: sum(o.status == st for o in outcomes) for st in SampleStatus}
    repo.audit(s, actor, "enroll", "student", student.student_number, **counts, source=source, model=model,
               added_by=added_by.value)
    return outcomes


def _downscale(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = MAX_STORED_SIDE / max(h, w)
    return image if s >= 1 else cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


def ensure_embeddings(url: str, course_code: str, pipeline: Pipeline, store: ImageStore, settings: Settings) -> int:
    """Give every accepted sample of the course roster an embedding from the pipeline's model.

    Only accepted samples are copied (a pending one once a reviewer accepted it); the copy keeps
    the review status and the hashes.

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
                                     blur=x.blur, det_score=x.det_score, yaw=x.yaw, content_sha256=x.content_sha256,
                                     phash=x.phash, added_by=x.added_by, reject_reason=x.reject_reason))
    rows = []
    for meta in todo:
        try:
            image = store.load(meta["image_path"])
        except FileNotFoundError:
            continue
        face, _, _ = find_enrollment_face(image, pipeline, settings)
        if face is None:
            continue
        rows.append(FaceSample(**meta, status=SampleStatus.ACCEPTED, model_name=model,
                               embedding=to_blob(pipeline.embedder.embed(image, face)[0])))
    fresh: list[FaceSample] = []
    if rows:
        with session_scope(url) as s:
            # Another process may have embedded the same photos meanwhile: add only what is still missing.
            done = set(s.scalars(select(FaceSample.image_path).where(
                FaceSample.model_name == model, FaceSample.image_path.in_([r.image_path for r in rows]))))
            fresh = [r for r in rows if r.image_path not in done]
            s.add_all(fresh)
    ensure_classroom_templates(url, course_code, pipeline, store, settings)
    return len(fresh)


def ensure_classroom_templates(url: str, course_code: str, pipeline: Pipeline, store: ImageStore,
                               settings: Settings) -> int:
    """Give every accepted sample of the roster (for the pipeline's model) its classroom
    templates (``vision.templates``) when the course uses them and the embedder has a
    calibrated scale. Models run between two short transactions, as in ``ensure_embeddings``.
    Returns how many samples got templates."""
    from aas_core.db import session_scope

    model = pipeline.embedder.name
    if classroom_scale(model) is None:
        return 0
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        if not course.config.recognition.classroom_templates:
            return 0
        have = select(FaceTemplate.sample_id)
        todo = [(x.id, x.image_path, from_blob(x.embedding)) for st in repo.roster(s, course) for x in st.samples
                if x.accepted and x.model_name == model and x.image_path and x.embedding is not None]
        done = set(s.scalars(have.where(FaceTemplate.sample_id.in_([t[0] for t in todo])))) if todo else set()
        todo = [t for t in todo if t[0] not in done]
    rows = []
    for sample_id, path, own in todo:
        try:
            image = store.load(path)
        except FileNotFoundError:
            continue
        face = _sample_face(image, own, pipeline, settings)
        if face is None:
            continue
        views = classroom_embeddings(pipeline, image, face, DEFAULT_VIEWS)
        rows.append(FaceTemplate(sample_id=sample_id, views=len(views), embedding=to_blob(views)))
    if not rows:
        return 0
    with session_scope(url) as s:
        # the sample may be gone (deleted, erased) or templated by another process meanwhile
        alive = set(s.scalars(select(FaceSample.id).where(FaceSample.id.in_([r.sample_id for r in rows]),
                                                          FaceSample.accepted.is_(True))))
        done = set(s.scalars(select(FaceTemplate.sample_id).where(
            FaceTemplate.sample_id.in_([r.sample_id for r in rows]))))
        fresh = [r for r in rows if r.sample_id in alive and r.sample_id not in done]
        s.add_all(fresh)
    return len(fresh)


def _add_classroom_templates(s: Session, sample_id: int, image: np.ndarray, face: Detections | None,
                             pipeline: Pipeline) -> None:
    """The new sample's classroom templates (``vision.templates``), from the photo as uploaded,
    while its face is at hand (``ensure_classroom_templates`` makes any missing later)."""

    if face is None or classroom_scale(pipeline.embedder.name) is None:
        return
    try:
        views = classroom_embeddings(pipeline, image, face, DEFAULT_VIEWS)
    except (cv2.error, ValueError) as exc:  # never worth losing the photo over
        log.warning("classroom templates of sample %s not made now: %s", sample_id, exc)
        return
    s.add(FaceTemplate(sample_id=sample_id, views=len(views), embedding=to_blob(views)))


def _sample_face(image: np.ndarray, own: np.ndarray, pipeline: Pipeline, settings: Settings) -> Detections | None:
    """The face of a stored sample photo: the detection whose embedding is the sample's own.

    Not ``find_enrollment_face`` again: a photo with a second face in the background was
    accepted when the student's face dominated, but after re-encoding the rule may now see
    "two faces of similar size"; the stored embedding says which face was enrolled.
    """
    padded, pad = _pad_for_detection(image)
    faces = pipeline.face_detector.detect(padded, conf_threshold=min(pipeline.config.face_conf,
                                                                       settings.enroll_min_det_score))
    if pad and len(faces):
        faces = faces.shifted(-pad, -pad)
    if not len(faces):
        return None
    embs = pipeline.embedder.embed(image, faces)
    sims = embs @ (own / max(float(np.linalg.norm(own)), 1e-12))
    best = int(np.argmax(sims))
    return faces[best] if sims[best] >= SAME_FACE_COS else None


def delete_sample(s: Session, sample: FaceSample, store: ImageStore, actor: str) -> None:
    """Delete a sample and, when no other model's row uses it, its image file."""
    # A rejected sample has no image any more: ``image_path == None`` would match every such row.
    others = s.scalars(select(FaceSample).where(FaceSample.image_path == sample.image_path,
                                                FaceSample.id != sample.id)).all() if sample.image_path else []
    for o in others:  # the same photo embedded by other models goes too
        s.delete(o)
    store.delete(sample.image_path)
    repo.audit(s, actor, "sample.delete", "student", sample.student.student_number, sample=sample.id)
    s.delete(sample)
