"""Operations: what runs today, what waits for a person, and whether the workers keep up.

One service call for ``aas status --json`` and the Operations page (admins only): today's
sessions and their snapshots, sessions awaiting review, snapshots queued or failed, and — when
a broker is configured — the workers and queue depths as the broker and Celery's inspect API
report them (``tasks.app.broker_status``).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from aas_core.config import Settings, redact_url
from aas_core.db import session_scope
from aas_core.db.models import AttendanceRecord, ClassSession, Course, Role, SessionStatus, Snapshot, SnapshotStatus
from aas_core.services.auth import AuthUser, require_role
from aas_core.services.rooms import camera_health
from aas_core.services.sessions import session_plan
from aas_core.services.timetable import meeting_states

#: Completed sessions this recent are searched for records still to review.
REVIEW_WINDOW_DAYS = 30


def _day_bounds(today: date) -> tuple[datetime, datetime]:
    """``today`` in the server's local time zone as naive UTC bounds (how times are stored)."""
    start = datetime.combine(today, time.min).astimezone()  # local midnight, aware
    end = start + timedelta(days=1)
    return (start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None))


def _iso(t: datetime | None) -> str | None:
    return t.replace(tzinfo=UTC).isoformat(timespec="seconds") if t else None


def operations_status(url: str, user: AuthUser, settings: Settings, *, today: date | None = None,
                      broker: bool = True, broker_timeout_s: float = 1.0) -> dict[str, Any]:
    """The operations facts (admins only); ``broker=False`` skips asking the broker and workers."""
    require_role(user, Role.ADMIN)
    today = today or datetime.now().astimezone().date()
    lo, hi = _day_bounds(today)
    with session_scope(url) as s:
        rows = s.execute(select(ClassSession, Course.code).join(Course, ClassSession.course_id == Course.id)
                         .where(ClassSession.started_at >= lo, ClassSession.started_at < hi)
                         .order_by(ClassSession.started_at, ClassSession.id)).all()
        sessions = []
        for sess, code in rows:
            counts = Counter(x.status.value for x in sess.snapshots)
            sessions.append({"session_id": sess.id, "course": code, "started_at": _iso(sess.started_at),
                             "ended_at": _iso(sess.ended_at), "status": sess.status.value,
                             "camera": sess.camera_name, "planned": session_plan(sess).snapshots,
                             "snapshots": {st.value: counts.get(st.value, 0) for st in SnapshotStatus}})
        # Records a person still has to decide: review reasons and no override (as the review page).
        since = lo - timedelta(days=REVIEW_WINDOW_DAYS)
        review = s.execute(select(ClassSession.id, Course.code, ClassSession.started_at, AttendanceRecord.review_reasons)
                           .join(Course, ClassSession.course_id == Course.id)
                           .join(AttendanceRecord, AttendanceRecord.session_id == ClassSession.id)
                           .where(ClassSession.status == SessionStatus.COMPLETED, ClassSession.started_at >= since,
                                  AttendanceRecord.overridden_by.is_(None))).all()
        waiting: dict[int, dict[str, Any]] = {}
        for sid, code, started, reasons in review:
            if reasons:  # JSON null and [] both mean "nothing to review"
                w = waiting.setdefault(sid, {"session_id": sid, "course": code, "started_at": _iso(started),
                                             "students": 0})
                w["students"] += 1
        queued = s.scalar(select(func.count()).select_from(Snapshot).join(ClassSession)
                          .where(Snapshot.status == SnapshotStatus.CAPTURED,
                                 ClassSession.status == SessionStatus.RUNNING)) or 0
        oldest = s.scalar(select(func.min(Snapshot.captured_at)).join(ClassSession)
                          .where(Snapshot.status == SnapshotStatus.CAPTURED,
                                 ClassSession.status == SessionStatus.RUNNING))
        failed = s.execute(select(Snapshot.status, func.count()).join(ClassSession)
                           .where(ClassSession.started_at >= lo, ClassSession.started_at < hi,
                                  Snapshot.status.in_([SnapshotStatus.FAILED, SnapshotStatus.MISSING]))
                           .group_by(Snapshot.status)).all()
    by_status = {st.value if hasattr(st, "value") else str(st): int(n) for st, n in failed}
    out: dict[str, Any] = {
        "date": today.isoformat(),
        "database": redact_url(url),
        "sessions_today": sessions,
        "awaiting_review": sorted(waiting.values(), key=lambda w: w["started_at"] or "", reverse=True),
        "snapshots": {"queued": int(queued), "oldest_queued_at": _iso(oldest),
                      "failed_today": by_status.get("failed", 0), "missing_today": by_status.get("missing", 0)},
        "meetings_today": [m.as_json() for m in meeting_states(url, user, lo.replace(tzinfo=UTC),
                                                                hi.replace(tzinfo=UTC))],
        # Per camera: last good grab, last error (rooms as data; written by every capture).
        "cameras": [{"camera": h.camera, "last_ok_at": _iso(h.last_ok_at), "last_error": h.last_error,
                     "last_error_at": _iso(h.last_error_at), "failing": h.failing}
                    for h in camera_health(url, user)],
        "broker": None,
    }
    if settings.broker_url:
        if broker:
            from aas_core.tasks.app import broker_status

            out["broker"] = broker_status(settings, timeout_s=broker_timeout_s)
        else:
            out["broker"] = {"url": redact_url(settings.broker_url), "checked": False}
    return out
