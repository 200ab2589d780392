"""Moodle's Attendance activity (``mod_attendance``): export a session for its CSV import, and push
statuses through Moodle's web services (``aas moodle export`` / ``aas moodle push``).

Web services (REST, JSON): every call is ``POST <moodle>/webservice/rest/server.php`` with the form
fields ``wstoken``, ``wsfunction``, ``moodlewsrestformat=json`` and the function's parameters in
Moodle's form encoding (PHP's: a list ``values`` is ``values[0]=..&values[1]=..``, a structure
``s`` is ``s[key]=..``; :func:`form_params`). Moodle answers HTTP 200 also for errors, with a JSON
``{"exception", "errorcode", "message"}``; :class:`MoodleClient` turns that into :class:`MoodleError`.
The token travels in the POST body (never in a URL, which proxies and httpx's log would keep) and
is printed as ``***``.

A push, in order (functions and parameters as in mod_attendance's ``classes/external/``):

1. ``core_webservice_get_site_info`` -> the token's user id (``takenbyid``);
2. ``mod_attendance_get_sessions(attendanceid)`` -> the activity's sessions, each with its status
   set (``statusset``), its statuses (``id``, ``acronym``, ``setnumber``, ``deleted``) and its log;
3. ``core_user_get_users_by_field(field, values[])`` -> Moodle user ids of the course's students
   (``MoodleConfig.user_field``: idnumber, username or e-mail holds the AAS student id);
4. per decided AAS session, the Moodle session starting nearest to it (within
   ``MoodleConfig.match_window_min``), and per student whose status there differs from AAS's
   (``MoodleConfig.status_map``: AAS status -> acronym), ``mod_attendance_update_user_status
   (sessionid, studentid, takenbyid, statusid, statusset)``.

Steps 1-3 only read. A dry run makes them (so that every write it prints is exact) and prints
the writes of step 4 without sending them. Sessions are not created in Moodle: an AAS session
without a Moodle session at that time is reported (create it in the activity, with its repeat
option for a term).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from aas_core.config import Settings, with_secrets_file
from aas_core.db import repo, session_scope
from aas_core.db.models import AttendanceRecord, ClassSession, SessionStatus, Student
from aas_core.domain.course_config import MoodleConfig
from aas_core.services.auth import AuthUser, require_course

log = logging.getLogger(__name__)

__all__ = ["MoodleError", "MoodleClient", "Request", "PushResult", "form_params", "push", "export_csv",
           "decided_session_ids", "REST_PATH"]

REST_PATH = "/webservice/rest/server.php"


class MoodleError(RuntimeError):
    """Moodle is not configured, not reachable, or refused a call (the message says which and why)."""


# --- the wire format ------------------------------------------------------------------------------

def form_params(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Moodle's (PHP's) form encoding of nested parameters, in order.

    ``{"field": "idnumber", "values": ["S1", "S2"]}`` -> ``[("field", "idnumber"), ("values[0]", "S1"),
    ("values[1]", "S2")]``; mappings become ``name[key]``; booleans ``1``/``0`` (PARAM_BOOL); None
    is left out (Moodle then uses the parameter's default).
    """
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            out += form_params(value, name)
        elif isinstance(value, (list, tuple)):
            out += form_params({str(i): v for i, v in enumerate(value)}, name)
        elif isinstance(value, bool):
            out.append((name, "1" if value else "0"))
        else:
            out.append((name, str(value)))
    return out


@dataclass(frozen=True)
class Request:
    """One web-service call: what a dry run prints and what the loopback test server checks."""

    function: str
    params: tuple[tuple[str, str], ...]
    write: bool = False

    def fields(self, token: str) -> list[tuple[str, str]]:
        return [("wstoken", token), ("wsfunction", self.function), ("moodlewsrestformat", "json"), *self.params]

    def shown(self, base_url: str) -> str:
        """``POST <url>`` and the form body, token as ``***`` (the rest exactly as sent)."""
        return f"POST {base_url.rstrip('/')}{REST_PATH}\n{urlencode(self.fields('***'))}"

    def as_json(self) -> dict[str, Any]:
        return {"function": self.function, "params": dict(self.params), "write": self.write}


class MoodleClient:
    """A Moodle REST endpoint. ``transport``: tests may hand an httpx transport; the push test uses
    a real HTTP server on loopback instead."""

    def __init__(self, base_url: str, token: SecretStr | str, *, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self._http = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> MoodleClient:
        s = with_secrets_file(settings)
        missing = [n for n, v in (("AAS_MOODLE_URL", s.moodle_url), ("AAS_MOODLE_TOKEN", s.moodle_token)) if not v]
        if missing:
            raise MoodleError(f"Moodle is not configured: set {' and '.join(missing)} (environment or [moodle] in "
                              ".streamlit/secrets.toml)")
        assert s.moodle_url is not None and s.moodle_token is not None
        if not s.moodle_url.startswith(("https://", "http://")):
            raise MoodleError(f"AAS_MOODLE_URL must start with https:// (got {s.moodle_url[:40]!r})")
        return cls(s.moodle_url, s.moodle_token, timeout_s=s.moodle_timeout_s)

    def close(self) -> None:
        self._http.close()

    def call(self, request: Request) -> Any:
        token = self._token.get_secret_value()
        try:
            resp = self._http.post(f"{self.base_url}{REST_PATH}", content=urlencode(request.fields(token)),
                                   headers={"Content-Type": "application/x-www-form-urlencoded",
                                            "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise MoodleError(f"{request.function}: Moodle at {self.base_url} is not reachable: "
                              f"{exc.__class__.__name__}") from None
        if resp.status_code != 200:
            raise MoodleError(f"{request.function}: Moodle answered HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise MoodleError(f"{request.function}: Moodle's answer is not JSON (is AAS_MOODLE_URL the site's "
                              "address, and the REST protocol enabled?)") from None
        if isinstance(data, dict) and "exception" in data:
            msg = str(data.get("message") or data.get("errorcode") or "error").replace(token, "***")
            raise MoodleError(f"{request.function}: Moodle refused: {msg} ({data.get('errorcode', '?')})")
        return data


# --- reading AAS ------------------------------------------------------------------------------------

@dataclass
class SessionRecords:
    session_id: int
    started_at: datetime  # naive UTC
    statuses: dict[str, str]  # student number -> final status
    values: dict[str, str]  # student number -> the value of the Moodle user field


def decided_session_ids(url: str, user: AuthUser, course_code: str) -> list[int]:
    """Completed sessions of the course with attendance records, oldest first."""
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        require_course(user, course)
        has = select(AttendanceRecord.id).where(AttendanceRecord.session_id == ClassSession.id).exists()
        return list(s.scalars(select(ClassSession.id).where(ClassSession.course_id == course.id,
                                                             ClassSession.status == SessionStatus.COMPLETED, has)
                              .order_by(ClassSession.started_at, ClassSession.id)))


def _load(url: str, user: AuthUser, course_code: str, session_ids: Sequence[int] | None
          ) -> tuple[MoodleConfig, list[SessionRecords]]:
    wanted = list(session_ids) if session_ids is not None else decided_session_ids(url, user, course_code)
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        require_course(user, course)
        cfg = course.config.moodle
        out = []
        for sid in wanted:
            sess = s.get(ClassSession, sid)
            if sess is None or sess.course_id != course.id:
                raise LookupError(f"session {sid} is not a session of {course.code}")
            if sess.status != SessionStatus.COMPLETED:
                raise ValueError(f"session {sid} is {sess.status.value}: only decided sessions go to Moodle")
            rows = s.execute(select(Student, AttendanceRecord.final_status)
                             .join(AttendanceRecord, AttendanceRecord.student_id == Student.id)
                             .where(AttendanceRecord.session_id == sid).order_by(Student.student_number)).all()
            statuses = {st.student_number: status for st, status in rows}
            values = {st.student_number: (st.email or "") if cfg.user_field == "email" else st.student_number
                      for st, _ in rows}
            out.append(SessionRecords(sid, sess.started_at, statuses, values))
        return cfg, out


# --- export (the activity's "Import attendance" CSV) -----------------------------------------------

def export_csv(url: str, user: AuthUser, course_code: str, session_id: int) -> tuple[str, bytes]:
    """(file name, CSV) of one decided session for mod_attendance's *Import attendance* (one session
    per import): columns ``user`` (the ``MoodleConfig.user_field`` value), ``scantime`` (left empty:
    a time there would make Moodle work out the status from the clock instead) and ``status``
    (the mapped acronym). In the import form map them to your user field, scan time and status.

    Cells are written as they are (Moodle must match them exactly), not spreadsheet-escaped.
    Audited as an export.
    """
    cfg, [sess] = _load(url, user, course_code, [session_id])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["user", "scantime", "status"])
    n = 0
    for number in sorted(sess.statuses):
        value = sess.values[number]
        if value:
            w.writerow([value, "", cfg.status_map.acronym(sess.statuses[number])])
            n += 1
    with session_scope(url) as s:
        repo.audit(s, user.username, "export", "course", course_code, format="moodle_csv", session=session_id, rows=n)
    return f"{course_code}_session{session_id}_{sess.started_at:%Y-%m-%d_%H%M}_moodle.csv", buf.getvalue().encode()


# --- push ---------------------------------------------------------------------------------------------

@dataclass
class SessionPush:
    session_id: int
    moodle_session_id: int | None
    to_send: int = 0  # status updates (sent, or printed by a dry run)
    unchanged: int = 0  # Moodle already had the mapped status
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (student number, why)

    def as_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "moodle_session_id": self.moodle_session_id, "updates": self.to_send,
                "unchanged": self.unchanged, "skipped": [{"student_id": a, "reason": b} for a, b in self.skipped]}


@dataclass
class PushResult:
    course: str
    attendance_id: int
    base_url: str
    dry_run: bool
    reads: list[Request] = field(default_factory=list)  # sent (also by a dry run)
    writes: list[Request] = field(default_factory=list)  # sent, or only printed by a dry run
    sessions: list[SessionPush] = field(default_factory=list)
    sent: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"course": self.course, "attendance_id": self.attendance_id, "dry_run": self.dry_run,
                "moodle": self.base_url, "sessions": [x.as_json() for x in self.sessions],
                "reads": [r.as_json() for r in self.reads], "writes": [r.as_json() for r in self.writes],
                "sent": self.sent}


def _epoch(naive_utc: datetime) -> int:
    return int(naive_utc.replace(tzinfo=UTC).timestamp())


def _nearest(moodle_sessions: Sequence[Mapping[str, Any]], started: datetime, window_s: float
             ) -> Mapping[str, Any] | None:
    t = _epoch(started)
    best = min(moodle_sessions, key=lambda m: abs(int(m.get("sessdate", 0)) - t), default=None)
    if best is None or abs(int(best.get("sessdate", 0)) - t) > window_s:
        return None
    return best


def _status_ids(moodle_session: Mapping[str, Any]) -> dict[str, int]:
    """Acronym -> status id among the statuses of the session's own status set (not deleted)."""
    statusset = int(moodle_session.get("statusset", 0) or 0)
    out: dict[str, int] = {}
    for st in moodle_session.get("statuses") or []:
        if int(st.get("deleted", 0) or 0) or int(st.get("setnumber", 0) or 0) != statusset:
            continue
        out.setdefault(str(st.get("acronym")), int(st["id"]))
    return out


def push(url: str, user: AuthUser, course_code: str, settings: Settings, *, session_ids: Sequence[int] | None = None,
         dry_run: bool = False, client: MoodleClient | None = None) -> PushResult:
    """Push the final statuses of the course's decided sessions (or of ``session_ids``) to Moodle.

    The course's instructor or an admin. ``MoodleError`` when Moodle is not configured or a call
    fails (writes already sent stay sent: a second push skips what Moodle has). Audited.
    """
    with session_scope(url) as s:
        require_course(user, repo.get_course(s, course_code))
    cfg, sessions = _load(url, user, course_code, session_ids)
    if cfg.attendance_id is None:
        raise MoodleError(f"course {course_code} has no Moodle attendance activity: run `aas course config "
                          f"{course_code} --set moodle.attendance_id=ID` (the id of the activity's instance)")
    own = client is None
    client = client or MoodleClient.from_settings(settings)
    result = PushResult(course_code, cfg.attendance_id, client.base_url, dry_run)
    try:
        def read(function: str, **params: Any) -> Any:
            req = Request(function, tuple(form_params(params)))
            result.reads.append(req)
            return client.call(req)

        site = read("core_webservice_get_site_info")
        taken_by = int(site["userid"]) if isinstance(site, dict) and "userid" in site else None
        if taken_by is None:
            raise MoodleError("core_webservice_get_site_info: no userid in Moodle's answer")
        moodle_sessions = read("mod_attendance_get_sessions", attendanceid=cfg.attendance_id)
        if not isinstance(moodle_sessions, list):
            raise MoodleError("mod_attendance_get_sessions: Moodle's answer is not a list of sessions")
        values = sorted({v for x in sessions for v in x.values.values() if v})
        users = read("core_user_get_users_by_field", field=cfg.user_field, values=values) if values else []
        uid = {str(u.get(cfg.user_field, "")).lower(): int(u["id"]) for u in users or [] if "id" in u}
        claimed: dict[int, int] = {}
        window_s = cfg.match_window_min * 60
        for x in sessions:
            m = _nearest(moodle_sessions, x.started_at, window_s)
            sp = SessionPush(x.session_id, int(m["id"]) if m else None)
            result.sessions.append(sp)
            if m is None:
                sp.skipped.append(("*", f"no session of Moodle activity {cfg.attendance_id} starts within "
                                        f"{cfg.match_window_min:g} min of {x.started_at:%Y-%m-%d %H:%M} UTC: "
                                        "create it in Moodle"))
                continue
            if int(m["id"]) in claimed:
                sp.skipped.append(("*", f"Moodle session {m['id']} already takes AAS session {claimed[int(m['id'])]}"))
                sp.moodle_session_id = None
                continue
            claimed[int(m["id"])] = x.session_id
            ids = _status_ids(m)
            logged = {int(e["studentid"]): int(e["statusid"]) for e in m.get("attendance_log") or []
                      if str(e.get("statusid", "")).lstrip("-").isdigit()}
            for number in sorted(x.statuses):
                acronym = cfg.status_map.acronym(x.statuses[number])
                value = x.values[number]
                if not value:
                    sp.skipped.append((number, f"no {cfg.user_field} on record in AAS"))
                    continue
                student = uid.get(value.lower())
                if student is None:
                    sp.skipped.append((number, f"no Moodle user with {cfg.user_field} {value!r}"))
                    continue
                if acronym not in ids:
                    sp.skipped.append((number, f"the Moodle session has no status {acronym!r} (it has "
                                               f"{', '.join(sorted(ids)) or 'none'}): fix moodle.status_map"))
                    continue
                if logged.get(student) == ids[acronym]:
                    sp.unchanged += 1
                    continue
                result.writes.append(Request("mod_attendance_update_user_status", tuple(form_params({
                    "sessionid": int(m["id"]), "studentid": student, "takenbyid": taken_by,
                    "statusid": ids[acronym], "statusset": int(m.get("statusset", 0) or 0)})), write=True))
                sp.to_send += 1
        if not dry_run:
            for req in result.writes:
                client.call(req)
                result.sent += 1
    finally:
        if own:
            client.close()
        if not dry_run:
            with session_scope(url) as s:
                repo.audit(s, user.username, "moodle.push", "course", course_code, attendance=cfg.attendance_id,
                           sessions=[x.session_id for x in result.sessions], sent=result.sent,
                           planned=len(result.writes))
    return result
