"""ORM models. Runs unchanged on SQLite (embedded default) and MySQL/MariaDB (production).

Portable choices: every VARCHAR has a length (MySQL needs one), embeddings are raw
float32 bytes in a BLOB (never pickle), per-course settings are one typed JSON document (``CourseConfig``), times are
stored as naive UTC (MySQL DATETIME has no zone).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from aas_core.db.types import PydanticJSON
from aas_core.domain.course_config import CourseConfig, SessionPlan
from aas_core.domain.timetable import Timetable

# Deterministic constraint names so Alembic migrations behave the same on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# MySQL's BLOB caps at 64 KiB; MEDIUMBLOB leaves room for any embedding size.
Blob = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


def utcnow() -> datetime:
    """Naive UTC 'now' (both databases store naive DATETIMEs)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(enum.StrEnum):
    ADMIN = "admin"
    INSTRUCTOR = "instructor"
    STUDENT = "student"


class SessionStatus(enum.StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"


class SnapshotStatus(enum.StrEnum):
    CAPTURED = "captured"  # stored, not processed yet
    PROCESSED = "processed"
    MISSING = "missing"  # camera failed within the window: never read as "nobody present"
    FAILED = "failed"  # stored but the pipeline failed on it


def _enum(e: type[enum.Enum], name: str) -> Enum:
    # Store the value strings; native_enum=False keeps schemas identical across databases.
    return Enum(e, name=name, native_enum=False, length=20, values_callable=lambda x: [m.value for m in x])


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Migration 0009 (accounts and sign-in): a reset password must be replaced at the next
    # sign-in; ``email`` links a first single sign-on (verified e-mail only); after that the
    # provider's issuer + subject identify the account (an e-mail can be reassigned, a subject not).
    email: Mapped[str | None] = mapped_column(String(254))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Unique indexes, not constraints: SQLite adds a constraint only by copying the table (see 0009).
    __table_args__ = (Index("uq_users_email", "email", unique=True),
                      Index("uq_users_oidc_identity", "oidc_issuer", "oidc_subject", unique=True))


class Instructor(Base):
    __tablename__ = "instructors"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    courses: Mapped[list[Course]] = relationship(back_populates="instructor")


class Student(Base):
    __tablename__ = "students"
    id: Mapped[int] = mapped_column(primary_key=True)
    student_number: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), unique=True)
    consent_given_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The signed consent form behind it (bulk consent from a CSV of forms); cleared on withdrawal.
    consent_reference: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    samples: Mapped[list[FaceSample]] = relationship(back_populates="student", cascade="all, delete-orphan")
    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="student", cascade="all, delete-orphan")

    @property
    def has_consent(self) -> bool:
        return self.consent_given_at is not None


class Course(Base):
    __tablename__ = "courses"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    instructor_id: Mapped[int | None] = mapped_column(ForeignKey("instructors.id", ondelete="SET NULL"))
    schedule: Mapped[str | None] = mapped_column(String(200))  # e.g. "Mon 09:00-10:30"
    room: Mapped[str | None] = mapped_column(String(100))
    # Plan, rules, recognition threshold and camera name, validated on write and read.
    config: Mapped[CourseConfig] = mapped_column(PydanticJSON(CourseConfig), default=lambda: CourseConfig())
    # Weekly meetings, term, cancelled dates, extra meetings (domain.timetable), validated on
    # write and read; NULL = no timetable (sessions start only when someone starts them).
    timetable: Mapped[Timetable | None] = mapped_column(PydanticJSON(Timetable), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Optimistic locking: every UPDATE bumps it and checks it (two tabs / two instructors
    # editing the same course never silently overwrite each other; see repo.update_course).
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    instructor: Mapped[Instructor | None] = relationship(back_populates="courses")
    # Archived: records kept, hidden from the pickers where new work starts (NULL = active).
    archived_at: Mapped[datetime | None] = mapped_column(DateTime)

    __mapper_args__ = {"version_id_col": version}
    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="course", cascade="all, delete-orphan")


class Enrollment(Base):
    __tablename__ = "enrollments"
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    course: Mapped[Course] = relationship(back_populates="enrollments")
    student: Mapped[Student] = relationship(back_populates="enrollments")


class SampleStatus(enum.StrEnum):
    """Review state of a face sample; only ``accepted`` ones are used for recognition."""

    ACCEPTED = "accepted"
    PENDING = "pending"  # held for an instructor's or admin's review
    REJECTED = "rejected"  # refused by a reviewer (photo and embedding deleted, row kept with the reason)


class FaceSample(Base):
    """One enrollment photo of a student: stored image, quality figures, embedding, review status.

    ``accepted`` mirrors ``status == accepted`` ("counts for recognition"): every gallery query
    filters on it, so it is kept in step by ``_sync_accepted`` whenever ``status`` is set.
    """

    __tablename__ = "face_samples"
    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    image_path: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(20), default="upload")  # upload|webcam|video|correction
    accepted: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[SampleStatus] = mapped_column(_enum(SampleStatus, "sample_status"), default=SampleStatus.ACCEPTED,
                                                 server_default=SampleStatus.ACCEPTED.value)
    reject_reason: Mapped[str | None] = mapped_column(String(500))  # why it is pending or rejected
    # Duplicate detection: sha256 of the decoded pixels (byte-identical uploads) and a 256-bit
    # perceptual hash (re-encoded / resized copies), hex. Kept on rejected rows too.
    content_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    phash: Mapped[str | None] = mapped_column(String(64))
    added_by: Mapped[str | None] = mapped_column(String(20))  # role of who added it: admin|instructor|student
    face_px: Mapped[float | None] = mapped_column(Float)
    blur: Mapped[float | None] = mapped_column(Float)
    det_score: Mapped[float | None] = mapped_column(Float)
    yaw: Mapped[float | None] = mapped_column(Float)
    model_name: Mapped[str | None] = mapped_column(String(100), index=True)
    embedding: Mapped[bytes | None] = mapped_column(Blob)  # float32 little-endian bytes
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    student: Mapped[Student] = relationship(back_populates="samples")

    @validates("status")
    def _sync_accepted(self, _key: str, value: SampleStatus | str) -> SampleStatus:
        value = SampleStatus(value)
        self.accepted = value == SampleStatus.ACCEPTED
        return value


class FaceTemplate(Base):
    """A sample's face as the classroom camera sees it (``vision.templates``): small, dim, noisy
    renderings of the enrollment photo, embedded by the sample's model (``views`` x d float32).

    Derived data: it goes with its sample (cascade), and counts only while the sample does
    (every query joins the sample's accepted / model / consent filters).
    """

    __tablename__ = "face_templates"
    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("face_samples.id", ondelete="CASCADE"), index=True,
                                           unique=True)
    views: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(Blob)  # views x d float32 little-endian bytes
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ClassSession(Base):
    __tablename__ = "sessions"
    # One session per course and timetable meeting, whoever opens it (two schedulers, a restart):
    # a unique index, so a second insert fails in the database, not in a check that can race.
    # NULL meeting_start (sessions started by hand) never collide.
    __table_args__ = (Index("uq_sessions_course_meeting", "course_id", "meeting_start", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[SessionStatus] = mapped_column(_enum(SessionStatus, "session_status"), default=SessionStatus.PLANNED)
    # What this session captures (snapshot count, schedule), fixed when it starts.
    capture_plan: Mapped[SessionPlan | None] = mapped_column(PydanticJSON(SessionPlan))
    seed: Mapped[int | None] = mapped_column(Integer)
    camera_name: Mapped[str | None] = mapped_column(String(100))
    profile: Mapped[str | None] = mapped_column(String(40))
    unknown_faces: Mapped[int] = mapped_column(Integer, default=0)
    # The timetable meeting this session is for (naive UTC start; the plan's offsets count from
    # it); NULL for sessions started by hand.
    meeting_start: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    course: Mapped[Course] = relationship()
    snapshots: Mapped[list[Snapshot]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="Snapshot.index"
    )
    records: Mapped[list[AttendanceRecord]] = relationship(back_populates="session", cascade="all, delete-orphan")


class Snapshot(Base):
    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("session_id", "index", name="uq_snapshots_session_index"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    scheduled_offset_s: Mapped[float | None] = mapped_column(Float)
    captured_at: Mapped[datetime | None] = mapped_column(DateTime)
    camera: Mapped[str | None] = mapped_column(String(100))
    light_used: Mapped[bool] = mapped_column(Boolean, default=False)
    image_path: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[SnapshotStatus] = mapped_column(_enum(SnapshotStatus, "snapshot_status"))
    error: Mapped[str | None] = mapped_column(Text)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # timings, models used
    session: Mapped[ClassSession] = relationship(back_populates="snapshots")
    observations: Mapped[list[FaceObservation]] = relationship(
        back_populates="snapshot", cascade="all, delete-orphan"
    )


class FaceObservation(Base):
    """A face seen in a snapshot: box, detector score, crops, embedding and its best match."""

    __tablename__ = "face_observations"
    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id", ondelete="CASCADE"), index=True)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    det_score: Mapped[float] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(String(20))
    crop_path: Mapped[str | None] = mapped_column(String(500))
    enhanced_path: Mapped[str | None] = mapped_column(String(500))
    model_name: Mapped[str | None] = mapped_column(String(100))
    embedding: Mapped[bytes | None] = mapped_column(Blob)
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id", ondelete="SET NULL"), index=True)
    similarity: Mapped[float | None] = mapped_column(Float)
    # How student_id was decided: "threshold" (open-set match), "seat" (seat continuity),
    # "manual" (an instructor's correction).
    match_source: Mapped[str | None] = mapped_column(String(20))
    top_matches: Mapped[list[Any] | None] = mapped_column(JSON)  # [[student_number, similarity], ...]
    # How identifiable the face is, in [0, 1] (vision.face_quality), and its components and
    # measurements; NULL for faces stored before 0006 and for withheld faces.
    quality: Mapped[float | None] = mapped_column(Float)
    quality_figures: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    snapshot: Mapped[Snapshot] = relationship(back_populates="observations")
    student: Mapped[Student | None] = relationship()


class AttendanceRecord(Base):
    __tablename__ = "attendance_records"
    __table_args__ = (UniqueConstraint("session_id", "student_id", name="uq_attendance_session_student"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    auto_status: Mapped[str] = mapped_column(String(20))
    final_status: Mapped[str] = mapped_column(String(20))
    presence: Mapped[list[Any] | None] = mapped_column(JSON)  # per snapshot: true/false/null(missing)
    # Why a person should look at this record ("could not tell in snapshot 2: ..."), from the
    # decision (domain.abstention); NULL = nothing to review.
    review_reasons: Mapped[list[Any] | None] = mapped_column(JSON)
    best_similarity: Mapped[float | None] = mapped_column(Float)
    overridden_by: Mapped[str | None] = mapped_column(String(80))
    override_reason: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    session: Mapped[ClassSession] = relationship(back_populates="records")
    student: Mapped[Student] = relationship()


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(80))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class FaceCorrection(Base):
    """"That face is not X": an instructor's correction, kept as a negative example for X.

    The negative is the observation's own embedding, referenced, never copied: erasing the
    person in the face, withdrawing their consent or the retention purge nulls that embedding
    (``services.privacy``) and the negative stops counting with it; deleting the observation
    (its session deleted, its snapshot re-processed) deletes the correction. ``assigned_student_id``:
    who the instructor said it was instead (None: "not X", nobody named). Undone corrections stay
    for the audit trail with ``undone_at`` set and no longer count.
    """

    __tablename__ = "face_corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("face_observations.id", ondelete="CASCADE"), index=True)
    not_student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    assigned_student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    undone_by: Mapped[str | None] = mapped_column(String(80))
    undone_at: Mapped[datetime | None] = mapped_column(DateTime)
    observation: Mapped[FaceObservation] = relationship()
    not_student: Mapped[Student] = relationship(foreign_keys=[not_student_id])
    assigned_student: Mapped[Student | None] = relationship(foreign_keys=[assigned_student_id])


class Dispute(Base):
    """A student contests their status in one session; an instructor resolves it with a reason.

    ``status``: open | upheld (the status was changed, ``status_after``) | rejected (it stands).
    The student sees the outcome and the reason on their page.
    """

    __tablename__ = "disputes"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    message: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="open")
    status_before: Mapped[str] = mapped_column(String(20))
    status_after: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(80))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolution: Mapped[str | None] = mapped_column(String(500))
    session: Mapped[ClassSession] = relationship()
    student: Mapped[Student] = relationship()
# --- rooms, cameras, the scheduler (migration 0007) -----------------------------------------------

# MySQL's DATETIME keeps whole seconds: a good grab and an error in the same second could not be
# told apart ("is it failing now?"); microseconds there, as SQLite stores anyway.
PreciseTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class Room(Base):
    """A teaching room; its camera (at most one) is a :class:`Camera` row."""

    __tablename__ = "rooms"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    camera: Mapped[Camera | None] = relationship(back_populates="room", cascade="all, delete-orphan",
                                                 uselist=False)


class Camera(Base):
    """A room's camera without its secrets: kind, host (a URL or host name without credentials)
    and non-secret options. Passwords, credential-bearing URLs and light headers stay in the
    environment / secrets file under ``name`` (``services.rooms.camera_config`` merges them)."""

    __tablename__ = "cameras"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    host: Mapped[str | None] = mapped_column(String(300))
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    room: Mapped[Room] = relationship(back_populates="camera")


class CameraHealth(Base):
    """Last good grab and last error of a camera, by name (cameras of the database and of the
    environment alike); written by every capture and by the camera test."""

    __tablename__ = "camera_health"
    camera: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_ok_at: Mapped[datetime | None] = mapped_column(PreciseTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(PreciseTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class MissedMeeting(Base):
    """A timetable meeting no session was opened for (the scheduler was not running at its
    start): listed, never turned into an invented session."""

    __tablename__ = "missed_meetings"
    __table_args__ = (UniqueConstraint("course_id", "meeting_start", name="uq_missed_meetings_course_start"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    meeting_start: Mapped[datetime] = mapped_column(DateTime)
    meeting_end: Mapped[datetime | None] = mapped_column(DateTime)
    room: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(300))
    noted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SchedulerInstance(Base):
    """A running (or once running) ``aas scheduler``: its last tick tells how long it was away."""

    __tablename__ = "scheduler_instances"
    instance: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_tick_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)


class CaptureDispatch(Base):
    """A snapshot of a scheduled session handed to ``work.capture``: the primary key makes the
    hand-over happen once, however many schedulers tick."""

    __tablename__ = "capture_dispatches"
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    dispatched_at: Mapped[datetime] = mapped_column(DateTime)
    instance: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=1)


# --- self check-in (services.checkin; migration 0011) --------------------------------------------

class CheckInWindow(Base):
    """A time during a session when students may check themselves in for snapshot ``snapshot_index``.

    The codes shown on the room's screen are TOTP codes (30 s) whose secret is derived from the
    installation's ``AAS_SECRET_KEY`` and this row's random ``nonce`` (``services.checkin``): the
    database alone cannot produce a code, and no secret is stored here.
    """

    __tablename__ = "checkin_windows"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    snapshot_index: Mapped[int] = mapped_column(Integer)  # 0-based: the snapshot a check-in counts for
    opened_by: Mapped[str] = mapped_column(String(80))
    opened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    closes_at: Mapped[datetime] = mapped_column(DateTime)
    nonce: Mapped[str] = mapped_column(String(64))
    session: Mapped[ClassSession] = relationship()


class CheckIn(Base):
    """A student's verified self check-in: a sighting of them in ``snapshot_index`` with its own
    source (the decision reads it next to the camera's faces, ``services.checkin.sightings``)."""

    __tablename__ = "check_ins"
    __table_args__ = (UniqueConstraint("session_id", "student_id", "snapshot_index",
                                       name="uq_check_ins_session_student_snapshot"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("checkin_windows.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    snapshot_index: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    similarity: Mapped[float] = mapped_column(Float)  # 1:1 against the student's own accepted samples
    threshold: Mapped[float] = mapped_column(Float)  # the stricter threshold it passed
    model_name: Mapped[str | None] = mapped_column(String(100))
    crop_path: Mapped[str | None] = mapped_column(String(500))  # the selfie's face (evidence for the review)
    student: Mapped[Student] = relationship()


class CheckInAttempt(Base):
    """Every try of a student in a window (right or wrong code, selfie verified or not): bounds the
    tries (``CheckInConfig.max_attempts``) and tells the student and the instructor why."""

    __tablename__ = "checkin_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("checkin_windows.id", ondelete="CASCADE"), index=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20))  # services.checkin.Outcome
    detail: Mapped[str | None] = mapped_column(String(300))
    similarity: Mapped[float | None] = mapped_column(Float)


# --- e-mail notices (services.notify; migration 0011) ----------------------------------------------

class NoticeOptOut(Base):
    """A student who asked for no more notices of ``kind`` (e.g. ``at_risk``), by link, page or CLI."""

    __tablename__ = "notice_optouts"
    __table_args__ = (UniqueConstraint("student_id", "kind", name="uq_notice_optouts_student_kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))  # link | page | cli
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class NoticeSent(Base):
    """A notice that went out (no address, no text): a second run within the week sends it again
    only when asked to (``services.notify``)."""

    __tablename__ = "notices_sent"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # at_risk_student | at_risk_digest
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    rate: Mapped[float | None] = mapped_column(Float)


class UserSession(Base):
    """A signed-in browser (migration 0009): the dashboard's session cookie holds a random token,
    this row only its SHA-256. Revoked on sign-out, account disable, password reset and role
    change; ends after ``AAS_SESSION_IDLE_MINUTES`` without a page run or at ``expires_at``.

    Sign-in happens over Streamlit's websocket, which cannot set a cookie: the row is created
    with a one-time ``ticket`` (hash only, valid for seconds) that the browser redeems at
    ``/aas/session/start``; only then does the row get its ``token_hash``.
    """

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    ticket_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    method: Mapped[str] = mapped_column(String(20))  # password | sso
    # Digest of the account row (id, name, password hash, role, active) at sign-in: a change
    # made behind the services' back (SQL, another tool) still ends the session.
    account_stamp: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
