"""A small but complete school in a database, with real image files, for the trust tests.

Two instructors (alice teaches A101, bob teaches B202), three students:
S1 on A101, S2 on A101 and B202, S3 on B202. Every student has two face samples (files +
embeddings); every session has a stored snapshot with one face observation per present
student (crop file, enhanced crop for S2, embedding, top matches) plus one unknown face,
and an attendance record per rostered student. One A101 session is 40 days old.
``World.files_of`` records which stored file shows which student, so tests can scan the
data dir for leftovers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import inspect, select, text

from aas_core.db import get_engine, repo, session_scope
from aas_core.db.embeddings import to_blob
from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    FaceObservation,
    FaceSample,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
    Student,
    User,
    utcnow,
)
from aas_core.media.store import ImageStore
from aas_core.services.auth import AuthUser, create_user, to_auth_user

PASSWORD = "correct horse battery"  # noqa: S105 - test fixture


@dataclass
class World:
    url: str
    store: ImageStore
    users: dict[str, AuthUser]
    files_of: dict[str, set[str]] = field(default_factory=dict)  # student -> stored files showing them
    snapshot_files: dict[int, str] = field(default_factory=dict)  # session id -> snapshot file
    sessions: dict[str, int] = field(default_factory=dict)  # "A_old", "A_new", "B_new" -> session id
    embeddings_of: dict[str, list[bytes]] = field(default_factory=dict)


def _img(rng: np.random.Generator, h: int = 64, w: int = 64) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def build_world(url: str, data_dir: Path) -> World:
    rng = np.random.default_rng(7)
    store = ImageStore(data_dir)
    w = World(url, store, {})
    with session_scope(url) as s:
        users = {
            "admin": create_user(s, "root-admin", PASSWORD, "admin"),
            "alice": create_user(s, "alice", PASSWORD, "instructor", name="Alice"),
            "bob": create_user(s, "bob", PASSWORD, "instructor", name="Bob"),
        }
        w.users.update({k: to_auth_user(s, u) for k, u in users.items()})
        a = repo.add_course(s, "A101", "Algebra", instructor_id=w.users["alice"].instructor_id)
        b = repo.add_course(s, "B202", "Biology", instructor_id=w.users["bob"].instructor_id)
        studs = {}
        for sn, courses in (("S1", [a]), ("S2", [a, b]), ("S3", [b])):
            st = repo.add_student(s, sn, f"Student {sn}", email=f"{sn.lower()}@school.test", consent=True)
            studs[sn] = st
            for c in courses:
                repo.enroll_in_course(s, c, st)
            w.files_of[sn] = set()
            w.embeddings_of[sn] = []
            for _ in range(2):
                rel = store.save("samples", _img(rng))
                emb = to_blob(rng.standard_normal(128).astype(np.float32))
                s.add(FaceSample(student_id=st.id, image_path=rel, model_name="test:emb", embedding=emb,
                                 face_px=64, blur=50.0, det_score=0.9))
                w.files_of[sn].add(rel)
                w.embeddings_of[sn].append(emb)
        for sn in ("S1", "S2"):
            u = create_user(s, sn.lower(), PASSWORD, "student", student_number=sn)
            w.users[sn.lower()] = to_auth_user(s, u)
        s.flush()
        plan = [("A_old", a, ["S1", "S2"], 40), ("A_new", a, ["S1"], 0), ("B_new", b, ["S2", "S3"], 0)]
        for key, course, present, age_days in plan:
            sess = ClassSession(course_id=course.id, status=SessionStatus.COMPLETED,
                                started_at=utcnow() - timedelta(days=age_days, hours=1),
                                ended_at=utcnow() - timedelta(days=age_days))
            s.add(sess)
            s.flush()
            w.sessions[key] = sess.id
            snap_rel = store.save("snapshots", _img(rng, 120, 160))
            w.snapshot_files[sess.id] = snap_rel
            snap = Snapshot(session_id=sess.id, index=0, image_path=snap_rel, status=SnapshotStatus.PROCESSED,
                            captured_at=sess.started_at)
            s.add(snap)
            s.flush()
            for i, sn in enumerate(present):
                crop = store.save("crops", _img(rng, 96, 96))
                enh = store.save("crops", _img(rng, 96, 96)) if sn == "S2" else None
                w.files_of[sn].add(crop)
                if enh:
                    w.files_of[sn].add(enh)
                emb = to_blob(rng.standard_normal(128).astype(np.float32))
                w.embeddings_of[sn].append(emb)
                others = [o for o in ("S1", "S2", "S3") if o != sn][:1]
                s.add(FaceObservation(snapshot_id=snap.id, x1=10 * i, y1=0, x2=10 * i + 40, y2=40, det_score=0.9,
                                      crop_path=crop, enhanced_path=enh, model_name="test:emb", embedding=emb,
                                      student_id=studs[sn].id, similarity=0.8,
                                      top_matches=[[sn, 0.8], [others[0], 0.31]]))
            unknown_crop = store.save("crops", _img(rng, 96, 96))
            s.add(FaceObservation(snapshot_id=snap.id, x1=100, y1=0, x2=140, y2=40, det_score=0.8,
                                  crop_path=unknown_crop, model_name="test:emb",
                                  embedding=to_blob(rng.standard_normal(128).astype(np.float32)),
                                  top_matches=[["S3", 0.2]]))
            for st in repo.roster(s, course):
                status = "attended" if st.student_number in present else "absent"
                s.add(AttendanceRecord(session_id=sess.id, student_id=st.id, auto_status=status,
                                       final_status=status, presence=[st.student_number in present]))
    return w


def all_files(store: ImageStore) -> set[str]:
    return {p.relative_to(store.root).as_posix() for p in store.all_files()}


def record_count(url: str, student_number: str | None = None) -> int:
    with session_scope(url) as s:
        q = select(AttendanceRecord)
        if student_number:
            q = q.join(Student, AttendanceRecord.student_id == Student.id).where(Student.student_number == student_number)
        return len(s.scalars(q).all())


def user_rows(url: str) -> list[User]:
    with session_scope(url) as s:
        return list(s.scalars(select(User)))


def all_text(url: str) -> str:
    """Every row of every table as one string (raw SQL, independent of the ORM): to look for a
    name, an e-mail or an id anywhere in the database."""
    eng = get_engine(url)
    parts = []
    with eng.connect() as c:
        for table in inspect(eng).get_table_names():
            parts += [repr(tuple(r)) for r in c.execute(text(f"SELECT * FROM {table}"))]
    return "\n".join(parts)
