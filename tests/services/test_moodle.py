"""Moodle (issue 14, item 6): push statuses to a real HTTP server on loopback that checks the
request format of Moodle's REST server exactly as ``webservice/rest/server.php`` and the
mod_attendance / core functions read it, and the CSV export for the activity's import.

The loopback "Moodle" refuses anything a real one would: a method other than POST, another path,
a body that is not form-encoded, a wrong token, ``moodlewsrestformat`` other than json, an
unknown function, a missing or unknown parameter, a PARAM_INT that is not an integer, an array
not written ``name[0]``, ``name[1]``..., a status of another status set (mod_attendance's
``update_user_status`` checks). It answers errors as Moodle does: HTTP 200 with
``{"exception", "errorcode", "message"}``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.domain.course_config import CourseConfig
from aas_core.db.models import AttendanceRecord, AuditLog, ClassSession, SessionStatus, utcnow
from aas_core.services import moodle
from aas_core.services.auth import AccessDenied, AuthUser, create_user, to_auth_user

PASSWORD = "correct horse battery"  # noqa: S105 - test accounts
TOKEN = "0123456789abcdef0123456789abcdef"  # noqa: S105 - the loopback Moodle's token
ATTENDANCE_ID = 7
TAKER = 42  # the token's Moodle user

# Parameters of each function as Moodle declares them: name -> "int" | "text" | "bool" | "list".
FUNCTIONS: dict[str, dict[str, str]] = {
    "core_webservice_get_site_info": {},
    "mod_attendance_get_sessions": {"attendanceid": "int"},
    "core_user_get_users_by_field": {"field": "text", "values": "list"},
    "mod_attendance_update_user_status": {"sessionid": "int", "studentid": "int", "takenbyid": "int",
                                          "statusid": "int", "statusset": "text"},
}
OPTIONAL = {"core_webservice_get_site_info": {"serviceshortnames"}}


def _error(code: str, message: str) -> dict[str, str]:
    return {"exception": "moodle_exception" if code == "invalidtoken" else "invalid_parameter_exception",
            "errorcode": code, "message": message}


@dataclass
class FakeMoodle:
    """The state of the loopback Moodle: sessions of one attendance activity, users, the log."""

    sessions: list[dict[str, Any]]
    users: list[dict[str, Any]]
    received: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (function, raw body, params)
    refused: list[str] = field(default_factory=list)

    def handle(self, method: str, path: str, ctype: str, body: str) -> Any:
        if method != "POST" or path != "/webservice/rest/server.php":
            return 404, {"error": "not found"}
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return 200, _error("invalidparameter", "body is not form-encoded")
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=True)
        form: dict[str, str] = {}
        for k, v in pairs:
            if k in form:
                return 200, _error("invalidparameter", f"{k} given twice")
            form[k] = v
        if form.pop("wstoken", None) != TOKEN:
            return 200, _error("invalidtoken", "Invalid token - token not found")
        if form.pop("moodlewsrestformat", None) != "json":
            return 200, _error("invalidparameter", "moodlewsrestformat must be json")
        fn = form.pop("wsfunction", None)
        if fn not in FUNCTIONS:
            return 200, _error("invalidrecord", f"Can't find data record in database table external_functions. {fn}")
        params: dict[str, Any] = {}
        for k, v in form.items():
            m = re.fullmatch(r"([a-z]+)(?:\[(\d+)\])?", k)
            if not m:
                return 200, _error("invalidparameter", f"bad parameter name {k}")
            name, idx = m.group(1), m.group(2)
            kind = FUNCTIONS[fn].get(name) or ("list" if name in OPTIONAL.get(fn, set()) else None)
            if kind is None:
                return 200, _error("invalidparameter", f"Unexpected keys ({name}) detected in parameter array.")
            if (kind == "list") != (idx is not None):
                return 200, _error("invalidparameter", f"{k}: wrong structure")
            if kind == "int" and not re.fullmatch(r"-?\d+", v):
                return 200, _error("invalidparameter", f"{name}: Invalid external api parameter: the value is "
                                                       f"\"{v}\", the server was expecting \"int\" type")
            if kind == "list":
                params.setdefault(name, {})[int(idx)] = v
            else:
                params[name] = int(v) if kind == "int" else v
        for name, kind in FUNCTIONS[fn].items():
            if name not in params:
                return 200, _error("invalidparameter", f"Missing required key in single structure: {name}")
            if kind == "list":
                keys = sorted(params[name])
                if keys != list(range(len(keys))):
                    return 200, _error("invalidparameter", f"{name}: array keys must be 0..n-1")
                params[name] = [params[name][i] for i in keys]
        self.received.append((fn, body, params))
        return 200, getattr(self, fn)(**params)

    def core_webservice_get_site_info(self, **_: Any) -> Any:
        return {"sitename": "Loopback Moodle", "userid": TAKER, "username": "aas-service", "release": "4.5"}

    def mod_attendance_get_sessions(self, attendanceid: int) -> Any:
        if attendanceid != ATTENDANCE_ID:
            return _error("invalidrecord", "Can't find data record in database table attendance.")
        return self.sessions

    def core_user_get_users_by_field(self, field: str, values: list[str]) -> Any:
        if field not in ("id", "idnumber", "username", "email"):
            return _error("invalidparameter", f"invalid field {field}")
        return [u for u in self.users if str(u.get(field)) in values]

    def mod_attendance_update_user_status(self, sessionid: int, studentid: int, takenbyid: int, statusid: int,
                                          statusset: str) -> Any:
        sess = next((x for x in self.sessions if x["id"] == sessionid), None)
        if sess is None or not any(u["id"] == studentid for u in self.users) or takenbyid != TAKER:
            return _error("invalidrecord", "Can't find data record in database.")
        if int(statusset) != sess["statusset"]:
            return _error("invalidstatus", "Invalid status")
        allowed = {st["id"] for st in sess["statuses"] if st["setnumber"] == sess["statusset"] and not st["deleted"]}
        if statusid not in allowed:
            return _error("invalidstatus", "Invalid status")
        log = [e for e in sess["attendance_log"] if int(e["studentid"]) != studentid]
        sess["attendance_log"] = [*log, {"studentid": studentid, "statusid": str(statusid), "remarks": "", "id": "1"}]
        return "OK"


def _statuses(setnumber: int, base: int) -> list[dict[str, Any]]:
    names = [("P", "Present", 2), ("L", "Late", 1), ("E", "Excused", 1), ("A", "Absent", 0)]
    return [{"id": base + i, "attendanceid": ATTENDANCE_ID, "acronym": a, "description": d, "grade": g,
             "visible": 1, "deleted": 0, "setnumber": setnumber} for i, (a, d, g) in enumerate(names)]


@dataclass
class World:
    url: str
    alice: AuthUser
    bob: AuthUser
    s1: AuthUser
    sessions: list[int]
    moodle: FakeMoodle
    base: str

    def settings(self, tmp: Path, **kw: Any) -> Settings:
        return Settings(**{"database_url": self.url, "data_dir": tmp / "data", "moodle_url": self.base,
                           "moodle_token": TOKEN, **kw})


@pytest.fixture
def world(migrated: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    from argon2 import PasswordHasher

    from aas_core.services import auth

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    monkeypatch.chdir(tmp_path)  # no secrets file of the checkout is read
    url = migrated
    statuses = {"S1": ["attended", "absent"], "S2": ["late", "left_early"], "S3": ["absent", "attended"]}
    with session_scope(url) as s:
        alice = create_user(s, "alice", PASSWORD, "instructor", name="Alice")
        bob = create_user(s, "bob", PASSWORD, "instructor", name="Bob")
        course = repo.add_course(s, "C1", "Chemistry", instructor_id=to_auth_user(s, alice).instructor_id,
                                 config=CourseConfig().with_settings([f"moodle.attendance_id={ATTENDANCE_ID}"]))
        studs = {sn: repo.add_student(s, sn, f"Student {sn}", email=f"{sn.lower()}@mail.test") for sn in statuses}
        for st in studs.values():
            repo.enroll_in_course(s, course, st)
        s1 = create_user(s, "s1", PASSWORD, "student", student_number="S1")
        users = {"alice": to_auth_user(s, alice), "bob": to_auth_user(s, bob), "s1": to_auth_user(s, s1)}
        start = (utcnow() - timedelta(days=8)).replace(microsecond=0)
        ids = []
        for k in range(2):
            sess = ClassSession(course_id=course.id, status=SessionStatus.COMPLETED,
                                started_at=start + timedelta(days=7 * k))
            s.add(sess)
            s.flush()
            ids.append(sess.id)
            for sn, st in studs.items():
                s.add(AttendanceRecord(session_id=sess.id, student_id=st.id, auto_status=statuses[sn][k],
                                       final_status=statuses[sn][k]))
        s.add(ClassSession(course_id=course.id, status=SessionStatus.RUNNING, started_at=utcnow()))
    epoch = int(start.replace(tzinfo=UTC).timestamp())
    # Moodle: the two lectures (entered there 2 minutes before AAS started), another one a day
    # later, and the second lecture on a second status set (statusset 1, other ids).
    sessions = [
        {"id": 101, "attendanceid": ATTENDANCE_ID, "sessdate": epoch - 120, "duration": 3600, "statusset": 0,
         "statuses": _statuses(0, 1) + _statuses(1, 11), "attendance_log": [
             {"studentid": "501", "statusid": "1", "remarks": "", "id": "9"}], "users": []},
        {"id": 102, "attendanceid": ATTENDANCE_ID, "sessdate": epoch + 86400, "duration": 3600, "statusset": 0,
         "statuses": _statuses(0, 1), "attendance_log": [], "users": []},
        {"id": 103, "attendanceid": ATTENDANCE_ID, "sessdate": epoch + 7 * 86400 - 120, "duration": 3600,
         "statusset": 1, "statuses": _statuses(0, 1) + _statuses(1, 11), "attendance_log": [], "users": []},
    ]
    fake = FakeMoodle(sessions, [{"id": 501, "idnumber": "S1", "username": "s1", "email": "s1@mail.test"},
                                 {"id": 502, "idnumber": "S2", "username": "s2", "email": "s2@mail.test"}])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET")

        def _answer(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            code, data = fake.handle(method, self.path, self.headers.get("Content-Type", ""), body)
            if isinstance(data, dict) and "exception" in data:
                fake.refused.append(data["errorcode"])
            raw = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield World(url, users["alice"], users["bob"], users["s1"], ids, fake,
                    f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def _log(world: World, moodle_session: int) -> dict[int, str]:
    sess = next(x for x in world.moodle.sessions if x["id"] == moodle_session)
    by_id = {st["id"]: st["acronym"] for st in sess["statuses"]}
    return {int(e["studentid"]): by_id[int(e["statusid"])] for e in sess["attendance_log"]}


def test_push_sends_each_changed_status_in_moodles_exact_request_format(world: World, tmp_path: Path) -> None:
    result = moodle.push(world.url, world.alice, "C1", world.settings(tmp_path))
    assert world.moodle.refused == []
    assert [f for f, _, _ in world.moodle.received] == [
        "core_webservice_get_site_info", "mod_attendance_get_sessions", "core_user_get_users_by_field",
        *["mod_attendance_update_user_status"] * 3]
    _, body, params = world.moodle.received[2]
    assert params == {"field": "idnumber", "values": ["S1", "S2", "S3"]}
    assert "values%5B0%5D=S1&values%5B1%5D=S2&values%5B2%5D=S3" in body  # values[0]=..., form-encoded
    # Session 1 -> Moodle 101 (2 min apart; 102 is a day off). S1 was already P there: unchanged.
    # Session 2 -> Moodle 103, whose status set is 1: its ids (11..14) and statusset=1 are sent.
    [first, second] = result.sessions
    assert (first.moodle_session_id, first.to_send, first.unchanged) == (101, 1, 1)
    assert (second.moodle_session_id, second.to_send, second.unchanged) == (103, 2, 0)
    assert all(why == "no Moodle user with idnumber 'S3'" for who, why in first.skipped + second.skipped)
    updates = [p for f, _, p in world.moodle.received if f == "mod_attendance_update_user_status"]
    assert updates == [
        {"sessionid": 101, "studentid": 502, "takenbyid": TAKER, "statusid": 2, "statusset": "0"},   # S2 late -> L
        {"sessionid": 103, "studentid": 501, "takenbyid": TAKER, "statusid": 14, "statusset": "1"},  # S1 absent -> A
        {"sessionid": 103, "studentid": 502, "takenbyid": TAKER, "statusid": 12, "statusset": "1"},  # left early -> L
    ]
    assert _log(world, 101) == {501: "P", 502: "L"} and _log(world, 103) == {501: "A", 502: "L"}
    assert result.sent == 3
    # A second push finds Moodle up to date and writes nothing.
    again = moodle.push(world.url, world.alice, "C1", world.settings(tmp_path))
    assert again.sent == 0 and [x.unchanged for x in again.sessions] == [2, 2]
    with session_scope(world.url) as s:
        audits = s.scalars(select(AuditLog).where(AuditLog.action == "moodle.push")).all()
        assert [(a.target_id, a.details["sent"]) for a in audits] == [("C1", 3), ("C1", 0)]
        assert TOKEN not in repr([a.details for a in s.scalars(select(AuditLog))])


def test_dry_run_reads_but_writes_nothing_and_prints_exactly_what_the_push_then_sends(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aas_core import cli
    from aas_core.config import get_settings

    monkeypatch.setenv("AAS_MOODLE_URL", world.base)
    monkeypatch.setenv("AAS_MOODLE_TOKEN", TOKEN)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli.app, ["--database-url", world.url, "moodle", "push", "--course", "C1",
                                         "--dry-run"])
        assert r.exit_code == 0, r.output
        assert {f for f, _, _ in world.moodle.received} == {"core_webservice_get_site_info",
                                                             "mod_attendance_get_sessions",
                                                             "core_user_get_users_by_field"}
        assert _log(world, 103) == {} and TOKEN not in r.output
        assert "dry run: 3 read request(s) sent, 3 write request(s) NOT sent" in r.output
        printed = re.findall(r"^POST (\S+)\n(\S+)$", r.output, flags=re.M)
        assert len(printed) == 3 and {p for p, _ in printed} == {f"{world.base}/webservice/rest/server.php"}
        n_reads = len(world.moodle.received)
        real = CliRunner().invoke(cli.app, ["--database-url", world.url, "moodle", "push", "--course", "C1", "--json"])
        assert real.exit_code == 0, real.output
        sent = [body for f, body, _ in world.moodle.received[n_reads:] if f == "mod_attendance_update_user_status"]
        # Byte for byte what the dry run printed, the token aside.
        assert [b.replace(f"wstoken={TOKEN}", "wstoken=%2A%2A%2A") for b in sent] == [b for _, b in printed]
        data = json.loads(real.output)
        assert data["sent"] == 3 and data["dry_run"] is False and TOKEN not in real.output
        assert [w["params"]["statusid"] for w in data["writes"]] == ["2", "14", "12"]
    finally:
        get_settings.cache_clear()


def test_status_map_errors_wrong_token_and_missing_configuration_say_why(world: World, tmp_path: Path) -> None:
    from aas_core.services import courses

    with pytest.raises(moodle.MoodleError, match="set AAS_MOODLE_URL and AAS_MOODLE_TOKEN"):
        moodle.push(world.url, world.alice, "C1", Settings(database_url=world.url))
    with pytest.raises(moodle.MoodleError) as err:
        moodle.push(world.url, world.alice, "C1", world.settings(tmp_path, moodle_token="wrong-token-value"))
    assert "Invalid token" in str(err.value) and "wrong-token-value" not in str(err.value)
    courses.update_config(world.url, world.alice, "C1", assignments=[
        'moodle.status_map={"attended": "P", "late": "LT", "left_early": "L", "absent": "A"}',
        "moodle.match_window_min=5"])
    result = moodle.push(world.url, world.alice, "C1", world.settings(tmp_path), session_ids=world.sessions[:1],
                         dry_run=True)
    [sp] = result.sessions
    assert ("S2", "the Moodle session has no status 'LT' (it has A, E, L, P): fix moodle.status_map") in sp.skipped
    courses.update_config(world.url, world.alice, "C1", assignments=["moodle.attendance_id=null"])
    with pytest.raises(moodle.MoodleError, match="--set moodle.attendance_id=ID"):
        moodle.push(world.url, world.alice, "C1", world.settings(tmp_path))


def test_a_session_without_a_moodle_session_nearby_is_reported_not_guessed(world: World, tmp_path: Path) -> None:
    from aas_core.services import courses

    for x in world.moodle.sessions:
        x["sessdate"] += 3 * 3600  # everything in Moodle three hours off
    courses.update_config(world.url, world.alice, "C1", assignments=["moodle.match_window_min=60"])
    result = moodle.push(world.url, world.alice, "C1", world.settings(tmp_path))
    assert [x.moodle_session_id for x in result.sessions] == [None, None] and result.sent == 0
    assert "no session of Moodle activity 7 starts within 60 min of" in result.sessions[0].skipped[0][1]


def test_export_csv_for_the_activitys_import_and_who_may_push_or_export(world: World, tmp_path: Path) -> None:
    name, data = moodle.export_csv(world.url, world.alice, "C1", world.sessions[1])
    assert name.startswith(f"C1_session{world.sessions[1]}_") and name.endswith("_moodle.csv")
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows == [["user", "scantime", "status"], ["S1", "", "A"], ["S2", "", "L"], ["S3", "", "P"]]
    for user in (world.bob, world.s1):
        with pytest.raises(AccessDenied):
            moodle.export_csv(world.url, user, "C1", world.sessions[0])
        with pytest.raises(AccessDenied):
            moodle.push(world.url, user, "C1", world.settings(tmp_path))
    assert world.moodle.received == []
    with pytest.raises(ValueError, match="only decided sessions"):
        with session_scope(world.url) as s:
            running = s.scalar(select(ClassSession.id).where(ClassSession.status == SessionStatus.RUNNING))
        moodle.export_csv(world.url, world.alice, "C1", running)
    from aas_core import cli

    out = tmp_path / "export"
    r = CliRunner().invoke(cli.app, ["--database-url", world.url, "moodle", "export", "--course", "C1", "--out",
                                     str(out)])
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("C1_session*_moodle.csv"))) == 2
    with session_scope(world.url) as s:
        exports = s.scalars(select(AuditLog).where(AuditLog.action == "export")).all()
        assert {a.details["format"] for a in exports} == {"moodle_csv"} and len(exports) == 3


def test_form_params_is_phps_encoding() -> None:
    assert moodle.form_params({"a": 1, "b": [3, "x"], "c": {"k": True, "n": None}, "d": None}) == [
        ("a", "1"), ("b[0]", "3"), ("b[1]", "x"), ("c[k]", "1")]
