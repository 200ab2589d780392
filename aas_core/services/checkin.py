"""Self check-in for hybrid and online lectures: a code from the room's screen, then a selfie.

1. **Window** — during a running session the course's instructor (or an admin) opens a check-in
   window for one of its snapshots (``open_window``) and shows its code on the room's screen
   (``current_code``: the Check-in page's display mode, their own sessions only).
2. **Code** — a student on the course's roster enters the code on their phone (``enter_code``).
   Codes are TOTP (RFC 6238, ``pyotp``): 6 digits, a new one every 30 s. Only the code of the
   current 30-s step is accepted (no drift window), so a code sent to a friend at home is
   refused as soon as it has changed ("expired", audited). The TOTP secret is never stored: it
   is HMAC(``AAS_SECRET_KEY``, window id + the window's random nonce) (a random key per server
   process when no key is set, so windows then live as long as the dashboard process).
3. **Selfie** — within ``CheckInConfig.selfie_within_s`` of a right code the student sends a
   selfie (``submit_selfie``), verified 1:1 against their *own* accepted gallery with a stricter
   threshold than the course's (course threshold + ``threshold_margin``); only consenting
   students with an accepted gallery can check in. A failed code or selfie says why and counts
   against ``max_attempts`` per window; every try is recorded (``CheckInAttempt``) and audited.
4. **Decision** — a verified check-in is a ``CheckIn`` row: a sighting of the student in the
   window's snapshot with its own source (``sightings``, read by ``SessionService.finalize`` next
   to the camera's faces). In a camera session it counts, like any sighting, only in a snapshot the
   camera captured and processed (a missing snapshot is "no data" for everyone). An **online
   lecture** has no camera (``start_online_session``): opening a window there records its snapshot
   as taken (a processed snapshot without an image: everyone was asked to check in), and
   ``finish_online_session`` decides. The review shows a check-in with its source and the
   selfie's face crop (``privacy.checkin_crop``).

Only the signed-in student can check themselves in: every student function takes the
``AuthUser`` and uses its own student number, never one passed in. What this does not stop (a
printed photo held to the camera, a friend in the room who reads the code to someone at home
*and* holds up their photo) is in ``docs/SECURITY.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyotp
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aas_core.config import Settings, with_secrets_file
from aas_core.db import repo, session_scope
from aas_core.db.embeddings import from_blob
from aas_core.db.models import (
    CheckIn,
    CheckInAttempt,
    CheckInWindow,
    ClassSession,
    Enrollment,
    FaceSample,
    Role,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
    Student,
    utcnow,
)
from aas_core.domain.decision import Sighting
from aas_core.media.store import ImageStore, discard_on_rollback
from aas_core.services import privacy
from aas_core.services.auth import AccessDenied, AuthUser, visible_courses

log = logging.getLogger(__name__)

__all__ = ["CODE_STEP_S", "CheckInRefused", "WindowView", "CodeView", "CheckInDone", "DisplaySession",
           "display_sessions", "open_window", "close_window", "current_code", "open_windows_for", "enter_code",
           "submit_selfie", "sightings", "my_check_ins", "SOURCE", "start_online_session", "finish_online_session"]

#: The source a check-in sighting carries (the review shows it; camera faces are "camera").
SOURCE = "self_check_in"
#: A new code every 30 s (TOTP's standard step).
CODE_STEP_S = 30
CODE_DIGITS = 6
#: Outcomes of a try that count against ``CheckInConfig.max_attempts``.
FAILED = ("wrong_code", "expired_code", "no_face", "poor_photo", "not_matching")

#: Used when no AAS_SECRET_KEY is set: lives and dies with this process (and its windows' codes).
_PROCESS_KEY = secrets.token_bytes(32)


class CheckInRefused(Exception):
    """A try that did not check the student in: ``str()`` says why in words for the student."""

    def __init__(self, message: str, attempts_left: int | None = None) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


@dataclass(frozen=True)
class WindowView:
    id: int
    session_id: int
    course_code: str
    course_name: str
    snapshot_index: int  # 0-based
    n_snapshots: int
    opened_at: datetime
    closes_at: datetime


@dataclass(frozen=True)
class CodeView:
    code: str
    seconds_left: int  # until the code changes
    closes_in_s: int  # until the window closes
    checked_in: int
    roster: int


@dataclass(frozen=True)
class CheckInDone:
    course_code: str
    session_id: int
    snapshot_index: int
    similarity: float
    threshold: float


@dataclass(frozen=True)
class DisplaySession:
    """A running session the user may show codes for, with its open window (if any)."""

    session_id: int
    course_code: str
    course_name: str
    started_at: datetime
    n_snapshots: int
    window: WindowView | None
    windows_held: tuple[int, ...]  # snapshot indices that already had a window
    default_minutes: float = 10.0  # the course's CheckInConfig.window_min
    online: bool = False  # a check-in-only session (no camera): ended with finish_online_session


# --- codes ----------------------------------------------------------------------------------------

def _key(settings: Settings) -> bytes:
    s = with_secrets_file(settings)
    value = s.secret_key.get_secret_value() if s.secret_key is not None else ""
    return value.encode() if value else _PROCESS_KEY


def _totp(settings: Settings, window: CheckInWindow) -> pyotp.TOTP:
    raw = hmac.new(_key(settings), f"aas-checkin\x1f{window.id}\x1f{window.nonce}".encode(), hashlib.sha256).digest()
    return pyotp.TOTP(base64.b32encode(raw[:20]).decode(), digits=CODE_DIGITS, interval=CODE_STEP_S)


def _ts(t: datetime) -> float:
    from datetime import UTC

    return t.replace(tzinfo=UTC).timestamp()


def _code_state(totp: pyotp.TOTP, code: str, now: datetime, window: CheckInWindow) -> str:
    """``ok`` (the current step's code), ``expired`` (an earlier step's code of this window) or ``wrong``."""
    t = _ts(now)
    if hmac.compare_digest(totp.at(t), code):
        return "ok"
    steps = int((t - _ts(window.opened_at)) // CODE_STEP_S) + 1
    for k in range(1, min(steps, 400) + 1):
        if hmac.compare_digest(totp.at(t - k * CODE_STEP_S), code):
            return "expired"
    return "wrong"


# --- the instructor's side ----------------------------------------------------------------------------

def _view(w: CheckInWindow) -> WindowView:
    from aas_core.services.sessions import session_plan

    sess = w.session
    return WindowView(w.id, sess.id, sess.course.code, sess.course.name, w.snapshot_index,
                      session_plan(sess).snapshots, w.opened_at, w.closes_at)


def _open_window_of(s: Session, session_id: int, now: datetime) -> CheckInWindow | None:
    return s.scalar(select(CheckInWindow).where(CheckInWindow.session_id == session_id, CheckInWindow.opened_at <= now,
                                                CheckInWindow.closes_at > now).order_by(CheckInWindow.id.desc()))


def display_sessions(url: str, user: AuthUser, now: datetime | None = None) -> list[DisplaySession]:
    """Running sessions of the courses ``user`` manages (admin: all), newest first."""
    from aas_core.services.sessions import session_plan

    now = now or utcnow()
    with session_scope(url) as s:
        ids = [c.id for c in visible_courses(s, user)]
        if not ids:
            return []
        out = []
        for sess in s.scalars(select(ClassSession).where(ClassSession.course_id.in_(ids),
                                                         ClassSession.status == SessionStatus.RUNNING)
                              .order_by(ClassSession.started_at.desc(), ClassSession.id.desc())):
            w = _open_window_of(s, sess.id, now)
            held = tuple(sorted(set(s.scalars(select(CheckInWindow.snapshot_index)
                                              .where(CheckInWindow.session_id == sess.id)))))
            plan = session_plan(sess)
            out.append(DisplaySession(sess.id, sess.course.code, sess.course.name, sess.started_at,
                                      plan.snapshots, _view(w) if w else None, held,
                                      sess.course.config.check_in.window_min, plan.source == "check_in"))
        return out


def open_window(url: str, user: AuthUser, session_id: int, snapshot_index: int, *, minutes: float | None = None,
                now: datetime | None = None) -> WindowView:
    """Open check-in for snapshot ``snapshot_index`` (0-based) of a running session of one's own
    course; a window still open for the session is closed first (one code on the screen at a time)."""
    now = now or utcnow()
    with session_scope(url) as s:
        sess = privacy.require_session(s, user, session_id)
        if sess.status != SessionStatus.RUNNING:
            raise ValueError(f"session {session_id} is {sess.status.value}: check-in needs a running session")
        from aas_core.services.sessions import session_plan

        n = session_plan(sess).snapshots
        if not 0 <= snapshot_index < n:
            raise ValueError(f"snapshot {snapshot_index + 1} does not exist: the session has {n}")
        cfg = sess.course.config.check_in
        minutes = cfg.window_min if minutes is None else float(minutes)
        if not 1 <= minutes <= 180:
            raise ValueError("a check-in window lasts between 1 and 180 minutes")
        old = _open_window_of(s, session_id, now)
        if old is not None:
            old.closes_at = now
        w = CheckInWindow(session_id=session_id, snapshot_index=snapshot_index, opened_by=user.username,
                          opened_at=now, closes_at=now + timedelta(minutes=minutes), nonce=secrets.token_hex(16))
        s.add(w)
        if session_plan(sess).source == "check_in" and not any(x.index == snapshot_index for x in sess.snapshots):
            # An online lecture's "snapshot" is the roll call itself: taken once it is opened.
            s.add(Snapshot(session_id=session_id, index=snapshot_index, status=SnapshotStatus.PROCESSED,
                           captured_at=now, camera="check-in", info={"source": SOURCE}))
        s.flush()
        repo.audit(s, user.username, "checkin.open", "session", session_id, window=w.id,
                   snapshot=snapshot_index + 1, minutes=minutes)
        return _view(w)


def close_window(url: str, user: AuthUser, window_id: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    with session_scope(url) as s:
        w = s.get(CheckInWindow, window_id)
        if w is None:
            raise repo.NotFound(f"no check-in window {window_id}")
        privacy.require_session(s, user, w.session_id)
        if w.closes_at > now:
            w.closes_at = now
            repo.audit(s, user.username, "checkin.close", "session", w.session_id, window=w.id)


def current_code(url: str, user: AuthUser, window_id: int, settings: Settings, now: datetime | None = None) -> CodeView:
    """The code to show now (the course's instructor or an admin: it is the key to the room)."""
    now = now or utcnow()
    with session_scope(url) as s:
        w = s.get(CheckInWindow, window_id)
        if w is None:
            raise repo.NotFound(f"no check-in window {window_id}")
        sess = privacy.require_session(s, user, w.session_id)
        if w.closes_at <= now or sess.status != SessionStatus.RUNNING:
            raise ValueError("this check-in window is closed")
        t = _ts(now)
        done = s.scalar(select(func.count(CheckIn.id)).where(CheckIn.window_id == w.id)) or 0
        roster = s.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.course_id == sess.course_id))
        return CodeView(_totp(settings, w).at(t), CODE_STEP_S - int(t % CODE_STEP_S),
                        max(0, int((w.closes_at - now).total_seconds())), int(done), int(roster or 0))


def start_online_session(url: str, user: AuthUser, course_code: str, *, snapshots: int | None = None) -> int:
    """Start a session of one's own course without a camera: its ``snapshots`` (default: the
    course's plan) are check-in windows the instructor opens during the lecture. Audited."""
    from aas_core.domain.course_config import SessionPlan
    from aas_core.services.auth import require_course

    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        require_course(user, course)
        n = course.config.plan.snapshots if snapshots is None else int(snapshots)
        if not 1 <= n <= 10:
            raise ValueError("an online session has between 1 and 10 check-ins")
        sess = ClassSession(course_id=course.id, status=SessionStatus.RUNNING, capture_plan=SessionPlan.for_check_in(n),
                            started_at=utcnow(), camera_name=None)
        s.add(sess)
        s.flush()
        repo.audit(s, user.username, "session.start", "session", sess.id, course=course.code, kind="check_in")
        return sess.id


def finish_online_session(url: str, store: ImageStore, pipeline: Any, settings: Settings, user: AuthUser,
                          session_id: int) -> Any:
    """End an online (check-in only) session and decide its attendance from the check-ins: the
    ``SessionOutcome``, or None when no window was ever opened (closed without attendance, "no
    data", never "everybody absent")."""
    from aas_core.services.sessions import SessionService, session_plan

    now = utcnow()
    with session_scope(url) as s:
        sess = privacy.require_session(s, user, session_id)
        if session_plan(sess).source != "check_in":
            raise ValueError(f"session {session_id} has a camera: it ends when its snapshots are taken")
        if sess.status != SessionStatus.RUNNING:
            raise ValueError(f"session {session_id} is {sess.status.value} already")
        for w in s.scalars(select(CheckInWindow).where(CheckInWindow.session_id == session_id,
                                                       CheckInWindow.closes_at > now)):
            w.closes_at = now
    return SessionService(url, store, pipeline, settings).finalize_or_abort(session_id, actor=user.username)


# --- the student's side --------------------------------------------------------------------------------

def _me(s: Session, user: AuthUser) -> Student:
    """The signed-in student's own row (whoever else anything names)."""
    if user.role != Role.STUDENT or not user.student_number:
        raise AccessDenied("only a signed-in student account can check in")
    return repo.get_student(s, user.student_number)


def _candidate_windows(s: Session, student: Student, now: datetime) -> list[CheckInWindow]:
    courses = select(Enrollment.course_id).where(Enrollment.student_id == student.id)
    return list(s.scalars(select(CheckInWindow).join(ClassSession, CheckInWindow.session_id == ClassSession.id)
                          .where(ClassSession.course_id.in_(courses), ClassSession.status == SessionStatus.RUNNING,
                                 CheckInWindow.opened_at <= now, CheckInWindow.closes_at > now)
                          .order_by(CheckInWindow.id)))


def _failures(s: Session, window_id: int, student_id: int) -> int:
    return int(s.scalar(select(func.count(CheckInAttempt.id)).where(
        CheckInAttempt.window_id == window_id, CheckInAttempt.student_id == student_id,
        CheckInAttempt.outcome.in_(FAILED))) or 0)


def _checked_in(s: Session, w: CheckInWindow, student_id: int) -> bool:
    return s.scalar(select(CheckIn.id).where(CheckIn.session_id == w.session_id, CheckIn.student_id == student_id,
                                             CheckIn.snapshot_index == w.snapshot_index)) is not None


def _attempt(s: Session, user: AuthUser, w: CheckInWindow, student: Student, outcome: str, now: datetime,
             detail: str | None = None, similarity: float | None = None) -> None:
    s.add(CheckInAttempt(window_id=w.id, student_id=student.id, at=now, outcome=outcome,
                         detail=(detail or None) and detail[:300], similarity=similarity))
    repo.audit(s, user.username, f"checkin.{outcome}", "student", student.student_number, session=w.session_id,
               window=w.id, **({"similarity": round(similarity, 4)} if similarity is not None else {}))


def open_windows_for(url: str, user: AuthUser, now: datetime | None = None) -> list[WindowView]:
    """The check-in windows open now for the signed-in student's courses."""
    now = now or utcnow()
    with session_scope(url) as s:
        return [_view(w) for w in _candidate_windows(s, _me(s, user), now)]


def enter_code(url: str, user: AuthUser, code: str, settings: Settings, now: datetime | None = None) -> WindowView:
    """Step 1: the code on the room's screen. Returns the window it opens the selfie step of;
    ``CheckInRefused`` says why not (wrong, expired, no tries left, nothing open)."""
    now = now or utcnow()
    digits = "".join(ch for ch in (code or "") if not ch.isspace())
    outcome: tuple[str, str] | None = None
    with session_scope(url) as s:
        student = _me(s, user)
        windows = [w for w in _candidate_windows(s, student, now) if not _checked_in(s, w, student.id)]
        if not windows:
            if _candidate_windows(s, student, now):
                raise CheckInRefused("You are already checked in for this check-in.")
            raise CheckInRefused("No check-in is open for your courses right now.")
        limits = {w.id: w.session.course.config.check_in.max_attempts for w in windows}
        left = {w.id: limits[w.id] - _failures(s, w.id, student.id) for w in windows}
        usable = [w for w in windows if left[w.id] > 0]
        if not usable:
            raise CheckInRefused("You have no tries left for this check-in; ask your instructor.", 0)
        if len(digits) != CODE_DIGITS or not digits.isdigit():
            outcome = ("wrong_code", f"The code has {CODE_DIGITS} digits: enter the one on the room's screen.")
        else:
            states = {w.id: _code_state(_totp(settings, w), digits, now, w) for w in usable}
            hit = next((w for w in usable if states[w.id] == "ok"), None)
            if hit is not None:
                _attempt(s, user, hit, student, "code_ok", now)
                return _view(hit)
            if "expired" in states.values():
                outcome = ("expired_code", "That code has expired (it changes every 30 seconds): enter the code on "
                                           "the screen now.")
            else:
                outcome = ("wrong_code", "That is not the code on the room's screen.")
        for w in usable:  # charged to every window it could have been for (normally one)
            _attempt(s, user, w, student, outcome[0], now)
        remaining = min(left[w.id] for w in usable) - 1
    assert outcome is not None
    raise CheckInRefused(f"{outcome[1]} {_tries(remaining)}", remaining)


def _tries(n: int) -> str:
    return "No tries left; ask your instructor." if n <= 0 else f"{n} {'try' if n == 1 else 'tries'} left."


def _own_gallery(s: Session, student: Student, model: str) -> np.ndarray:
    rows = s.scalars(select(FaceSample.embedding).where(
        FaceSample.student_id == student.id, FaceSample.accepted.is_(True), FaceSample.model_name == model,
        FaceSample.embedding.is_not(None))).all()
    if not rows:
        return np.zeros((0, 0), np.float32)
    g = np.stack([from_blob(b) for b in rows]).astype(np.float32)
    return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)


def _face_crop(image: np.ndarray, box: list[float] | None) -> np.ndarray | None:
    """The face with a margin (evidence for the review; never embedded again)."""
    from aas_core.services.observations import viewable_crop

    if not box:
        return None
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * 0.25, (y2 - y1) * 0.25
    a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
    c, d = min(w, int(x2 + mx)), min(h, int(y2 + my))
    return viewable_crop(image[b:d, a:c].copy()) if c > a and d > b else None


def submit_selfie(url: str, store: ImageStore, pipeline: Any, settings: Settings, user: AuthUser, window_id: int,
                  image: np.ndarray, now: datetime | None = None) -> CheckInDone:
    """Step 2: the selfie, verified 1:1 against the signed-in student's own accepted photos.

    ``CheckInRefused`` says why it did not check them in: no right code in the last
    ``selfie_within_s``, no consent, no accepted photo, no face / a poor photo, not them (a
    failed photo counts against the tries). On success the check-in, the face crop and the
    attempt are written in one transaction (consent re-read under the student row's lock).
    """
    from aas_core.services.enrollment import assess_and_embed

    now = now or utcnow()
    model = pipeline.embedder.name
    with session_scope(url) as s:
        student = _me(s, user)
        w = s.get(CheckInWindow, window_id)
        if w is None or w not in _candidate_windows(s, student, now):
            raise CheckInRefused("This check-in is not open (any more) for you.")
        cfg = w.session.course.config
        if _checked_in(s, w, student.id):
            raise CheckInRefused("You are already checked in for this check-in.")
        left = cfg.check_in.max_attempts - _failures(s, w.id, student.id)
        if left <= 0:
            raise CheckInRefused("You have no tries left for this check-in; ask your instructor.", 0)
        last_code = s.scalar(select(func.max(CheckInAttempt.at)).where(
            CheckInAttempt.window_id == w.id, CheckInAttempt.student_id == student.id,
            CheckInAttempt.outcome == "code_ok"))
        if last_code is None or now - last_code > timedelta(seconds=cfg.check_in.selfie_within_s):
            raise CheckInRefused(f"Enter the code on the room's screen first (a right code is good for "
                                 f"{cfg.check_in.selfie_within_s:g} seconds).", left)
        if not student.has_consent:
            raise CheckInRefused("Check-in compares your photo with your enrolled face photos, which needs your "
                                 "consent to face recognition (Students page).")
        gallery = _own_gallery(s, student, model)
        if not len(gallery):
            raise CheckInRefused("You have no accepted face photo yet: enroll photos on the Students page and wait "
                                 "for your instructor to accept them.")
        base = cfg.recognition.threshold if cfg.recognition.threshold is not None else pipeline.threshold
        threshold = min(0.99, float(base) + cfg.check_in.threshold_margin)
    # Detection and embedding take a while: outside any transaction.
    outcome, emb = assess_and_embed(image, "selfie", pipeline, settings)
    fail: tuple[str, str, float | None] | None = None
    sim = None
    if emb is None:
        reasons = "; ".join(outcome.reasons) or "no usable face"
        kind = "no_face" if any(r.startswith(("no face", "2 faces", "3 faces")) or "faces of similar size" in r
                                for r in outcome.reasons) else "poor_photo"
        fail = (kind, f"Your photo could not be used: {reasons}. Face the camera alone, in good light.", None)
    else:
        v = np.asarray(emb, np.float32).ravel()
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        sim = float((gallery @ v).max())
        if sim < threshold:
            # The similarity is not shown to the student: it would help tune a fake.
            fail = ("not_matching", "Your photo does not match your enrolled photos closely enough. Take it again "
                                    "facing the camera, in good light, without a mask or sunglasses.", sim)
    crop = _face_crop(image, outcome.box) if fail is None else None
    if fail is not None:
        with session_scope(url) as s:  # the failed try is committed (raising inside would roll it back)
            student = _me(s, user)
            w = s.get(CheckInWindow, window_id)
            _attempt(s, user, w, student, fail[0], now, fail[1], fail[2])
            left = w.session.course.config.check_in.max_attempts - _failures(s, w.id, student.id)
        raise CheckInRefused(f"{fail[1]} {_tries(left)}", left)
    try:
        with session_scope(url) as s:
            student = _me(s, user)
            w = s.get(CheckInWindow, window_id)
            # Consent re-read under the student row's lock: a withdrawal committed meanwhile leaves nothing.
            locked = s.execute(select(Student.consent_given_at).where(Student.id == student.id)
                               .with_for_update()).first()
            if locked is None or locked[0] is None or w not in _candidate_windows(s, student, now) \
                    or _checked_in(s, w, student.id):
                raise CheckInRefused("Your check-in could not be recorded (consent withdrawn, the window closed or "
                                     "you are already checked in).")
            rel = store.save("crops", crop) if crop is not None else None
            if rel:
                discard_on_rollback(s, store, rel)
            s.add(CheckIn(window_id=w.id, session_id=w.session_id, student_id=student.id,
                          snapshot_index=w.snapshot_index, at=now, similarity=sim, threshold=threshold,
                          model_name=model, crop_path=rel))
            _attempt(s, user, w, student, "checked_in", now, None, sim)
            assert sim is not None
            done = CheckInDone(w.session.course.code, w.session_id, w.snapshot_index, sim, threshold)
    except IntegrityError:  # the same student from a second tab at the same moment (unique per snapshot)
        raise CheckInRefused("You are already checked in for this check-in.") from None
    return done


def my_check_ins(url: str, user: AuthUser) -> list[dict[str, Any]]:
    """The signed-in student's own check-ins, newest first (course, session, snapshot, when)."""
    from aas_core.db.models import Course

    with session_scope(url) as s:
        student = _me(s, user)
        rows = s.execute(select(CheckIn.session_id, CheckIn.snapshot_index, CheckIn.at, Course.code)
                         .join(ClassSession, CheckIn.session_id == ClassSession.id)
                         .join(Course, ClassSession.course_id == Course.id)
                         .where(CheckIn.student_id == student.id).order_by(CheckIn.at.desc()).limit(50)).all()
        return [{"course": code, "session_id": sid, "snapshot": k + 1, "at": at} for sid, k, at, code in rows]


# --- the decision and the review -------------------------------------------------------------------------

def sightings(s: Session, session_id: int, numbers_by_id: dict[int, str]) -> list[Sighting]:
    """The session's verified check-ins as sightings (source ``self_check_in``) of roster students."""
    rows = s.execute(select(CheckIn.student_id, CheckIn.snapshot_index, CheckIn.similarity)
                     .where(CheckIn.session_id == session_id)).all()
    return [Sighting(k, numbers_by_id[sid], float(sim), source=SOURCE) for sid, k, sim in rows if sid in numbers_by_id]
