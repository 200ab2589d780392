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


class ClassSession(Base):
    __tablename__ = "sessions"
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
