"""`aas room ...`, `aas timetable import|show|missed` and `aas scheduler --once` through the real Typer
app in-process: rooms and a camera without secrets, CSV and iCalendar imports (bad files refused with
the line, nothing half-written), the JSON of `show` and `missed`, and one scheduler tick that opens
a meeting's session, captures it from a real HTTP camera and decides it with the real models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from typer.testing import CliRunner, Result

from aas_core import cli
from aas_core.config import get_settings
from aas_core.db import session_scope
from aas_core.db.models import ClassSession, Course, MissedMeeting, SessionStatus
from tests.capture.fake_camera import FakeCamera

POWELL = "lfw_Colin_Powell"
SECRET = "cli-Cam-S3cret"  # noqa: S105


def runner(url: str, tmp: Path, models_dir: Path, **env: str) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        get_settings.cache_clear()  # each invocation reads its own environment
        try:
            r = CliRunner().invoke(cli.app, ["--database-url", url, "--models-dir", str(models_dir), *args],
                                   env={"AAS_DATA_DIR": str(tmp / "data"), "AAS_PROFILE": "fast", **env})
        finally:
            get_settings.cache_clear()
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return r
    return run


def test_rooms_and_cameras_from_the_shell(db_url: str, tmp_path: Path, models_dir: Path) -> None:
    with FakeCamera() as cam:
        run = runner(db_url, tmp_path, models_dir, AAS_LIGHT_SETTLE_S="0.05",
                     AAS_CAMERAS=json.dumps({"cam-b204": {"username": "admin", "password": SECRET}}))
        assert run("init").exit_code == 0
        assert run("room", "add", "B-204", "--description", "Building B").stdout == "room B-204 added\n"
        assert run("room", "add", "B-204").exit_code != 0
        bad = run("room", "set-camera", "B-204", "--kind", "ipwebcam", "--host", f"http://admin:{SECRET}@{cam.host}")
        assert bad.exit_code != 0 and "must not hold credentials" in bad.stderr and SECRET not in bad.stderr
        bad = run("room", "set-camera", "B-204", "--kind", "ipwebcam", "--host", cam.base_url,
                  "--option", f"password={SECRET}")
        assert bad.exit_code != 0 and "are secrets" in bad.stderr
        r = run("room", "set-camera", "B-204", "--kind", "ipwebcam", "--host", cam.base_url, "--name", "cam-b204",
                "--option", "timeout_s=2", "--option", "verify_tls=false")
        assert r.exit_code == 0, r.output
        assert r.stdout == "room B-204: camera cam-b204 (ipwebcam)\n"
        [room] = json.loads(run("room", "list", "--json").stdout)
        assert room["camera"] == "cam-b204" and room["options"] == {"timeout_s": 2.0, "verify_tls": False}
        assert room["secrets_set"] == ["username", "password"] and room["health"] is None
        t = run("room", "test", "B-204", "--json", "--save", str(tmp_path / "frame.jpg"))
        assert t.exit_code == 0, t.output
        res = json.loads(t.stdout)
        assert res["ok"] and res["size"] == [320, 240] and res["light"] == "on and off again"
        assert (tmp_path / "frame.jpg").stat().st_size > 1000
        assert cam.light_log() == [True, False]
        assert "last good grab" in run("room", "list").stdout
        cam.fail_next(1, 503)
        t = run("room", "test", "B-204")
        assert t.exit_code != 0 and "503" in t.stderr
        assert "FAILING since" in run("room", "list").stdout
    assert run("room", "remove-camera", "B-204").stdout == "room B-204: camera removed\n"
    assert run("room", "remove", "B-204").exit_code == 0
    assert run("room", "remove", "B-204").exit_code != 0


CSV = """what,day,start,end,room
timezone,Europe/Berlin,,,
term_start,2026-03-02,,,
term_end,2026-03-31,,,
weekly,Mon,09:00,10:30,B-204
cancel,2026-03-16,,,
extra,2026-03-21,10:00,11:00,B-204
"""

ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//aas test//EN\r
BEGIN:VEVENT\r
UID:1@test\r
SUMMARY:Lecture\r
DTSTART;TZID=America/New_York:20260302T090000\r
DTEND;TZID=America/New_York:20260302T100000\r
RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6\r
EXDATE;TZID=America/New_York:20260304T090000\r
LOCATION:B-204\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_timetable_import_show_and_missed_from_the_shell(db_url: str, tmp_path: Path, models_dir: Path) -> None:
    run = runner(db_url, tmp_path, models_dir)
    assert run("init").exit_code == 0
    assert run("course", "add", "CS1", "--name", "Intro").exit_code == 0
    (tmp_path / "tt.csv").write_text(CSV)
    # the room does not exist yet: refused, nothing stored
    r = run("timetable", "import", "--course", "CS1", str(tmp_path / "tt.csv"))
    assert r.exit_code != 0 and "unknown room(s): B-204" in r.stderr
    assert json.loads(run("timetable", "show", "--course", "CS1", "--json").stdout)["timetable"] is None
    run("room", "add", "B-204")
    r = run("timetable", "import", "--course", "CS1", str(tmp_path / "tt.csv"))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[:3] == ["CS1: timetable imported, 5 meetings",
                                         "  time zone Europe/Berlin, term 2026-03-02 to 2026-03-31",
                                         "  weekly Mon 09:00-10:30 in B-204"]
    shown = json.loads(run("timetable", "show", "--course", "CS1", "--json").stdout)
    assert shown["timetable"]["cancelled"] == ["2026-03-16"] and shown["timetable"]["extra"][0]["date"] == "2026-03-21"
    assert set(shown) == {"course", "version", "timetable", "next", "missed"} and shown["missed"] == []
    # a bad CSV: every bad line named, the stored timetable untouched
    (tmp_path / "bad.csv").write_text(CSV + "weekly,Mon,10:00,11:00,B-204\nweekly,Xyz,09:00,10:00,\n")
    r = run("timetable", "import", "--course", "CS1", str(tmp_path / "bad.csv"))
    assert r.exit_code != 0 and "line 9: 'Xyz' is not a weekday" in r.stderr
    (tmp_path / "overlap.csv").write_text(CSV + "weekly,Mon,10:00,11:00,B-204\n")
    r = run("timetable", "import", "--course", "CS1", str(tmp_path / "overlap.csv"))
    assert r.exit_code != 0 and "overlap" in r.stderr
    assert json.loads(run("timetable", "show", "--course", "CS1", "--json").stdout)["timetable"] == shown["timetable"]
    r = run("timetable", "import", "--course", "CS1", str(tmp_path / "tt.txt.pdf"))
    assert r.exit_code != 0
    # iCalendar: the rule expanded, its EXDATE respected, the zone taken from DTSTART
    (tmp_path / "tt.ics").write_bytes(ICS.encode())
    r = run("timetable", "import", "--course", "CS1", str(tmp_path / "tt.ics"))
    assert r.exit_code == 0, r.output
    assert "CS1: timetable imported, 5 meetings" in r.stdout and "cancelled 2026-03-04" in r.stdout
    tt = json.loads(run("timetable", "show", "--course", "CS1", "--json").stdout)["timetable"]
    assert tt["timezone"] == "America/New_York" and [w["weekday"] for w in tt["weekly"]] == [0, 2]
    # next meetings: a term in the future (relative to today, as a person would run it)
    first = date.today() + timedelta(days=2)
    (tmp_path / "next.csv").write_text(f"what,day,start,end,room\ntimezone,UTC,,,\nterm_start,{first},,,\n"
                                       f"term_end,{first + timedelta(days=30)},,,\n"
                                       f"weekly,{first.strftime('%a')},12:00,13:00,B-204\n")
    assert run("timetable", "import", "--course", "CS1", str(tmp_path / "next.csv")).exit_code == 0
    nxt = json.loads(run("timetable", "show", "--course", "CS1", "--next", "3", "--json").stdout)["next"]
    assert [m["start"] for m in nxt] == [f"{first + timedelta(weeks=k)}T12:00:00Z" for k in range(3)]
    assert nxt[0]["key"] == f"CS1@{first}T12:00Z" and nxt[0]["room"] == "B-204"
    text = run("timetable", "show", "--course", "CS1", "--next", "2").stdout
    assert "next meetings:" in text and f"{first} 12:00-13:00\tB-204" in text
    # a missed meeting (written as the scheduler does) is listed by `missed` and `show`
    with session_scope(db_url) as s:
        course_id = s.scalar(select(Course.id).where(Course.code == "CS1"))
        s.add(MissedMeeting(course_id=course_id, meeting_start=datetime(2026, 3, 2, 8), room="B-204",
                            reason="no scheduler was running at its start"))
    missed = json.loads(run("timetable", "missed", "--course", "CS1", "--json").stdout)
    assert missed == [{"course": "CS1", "start": "2026-03-02T08:00:00Z", "end": None, "room": "B-204",
                       "reason": "no scheduler was running at its start"}]
    assert "missed meetings (1):" in run("timetable", "show", "--course", "CS1").stdout
    assert run("timetable", "show", "--course", "NOPE").exit_code != 0
    # the room is in use now
    assert "in the timetable of CS1" in run("room", "remove", "B-204").stderr


def _zone_with_room_for(start_utc: datetime, minutes: int) -> str:
    """A zone in which [start, start + minutes] is on one local day (a meeting cannot cross midnight)."""
    for name in ("UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata"):
        a = start_utc.astimezone(ZoneInfo(name))
        if (a + timedelta(minutes=minutes)).date() == a.date():
            return name
    raise AssertionError("no zone fits")  # pragma: no cover - four zones 5+ hours apart always fit


def test_scheduler_once_opens_captures_and_decides_a_meeting_with_the_real_models(
        sqlite_url: str, tmp_path: Path, models_dir: Path, data_dir: Path) -> None:
    run = runner(sqlite_url, tmp_path, models_dir, AAS_LIGHT_SETTLE_S="0.05", AAS_CAPTURE_WINDOW_S="10")
    assert run("init").exit_code == 0
    assert run("course", "add", "SC1", "--name", "Scheduled").exit_code == 0
    assert run("student", "add", "P1", "--name", "Colin", "--course", "SC1").exit_code == 0
    src = data_dir / "faces_dev" / POWELL
    shutil.copy(src / "1.jpg", tmp_path / "enroll.jpg")
    assert run("enroll", "P1", str(tmp_path / "enroll.jpg")).exit_code == 0
    # one snapshot at the meeting's start: a tick a minute into the meeting takes it at once
    assert run("course", "config", "SC1", "--set", "plan.snapshots=1", "--set", "plan.first_after_s=0",
               "--set", "plan.session_length_s=1800", "--set", "plan.burst_frames=1").exit_code == 0
    assert run("room", "add", "R1").exit_code == 0
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=1)
    zone = _zone_with_room_for(start, 30)
    local = start.astimezone(ZoneInfo(zone))
    (tmp_path / "today.csv").write_text(
        f"what,day,start,end,room\ntimezone,{zone},,,\nterm_start,{local.date()},,,\nterm_end,{local.date()},,,\n"
        f"extra,{local.date()},{local:%H:%M},{local + timedelta(minutes=30):%H:%M},R1\n")
    assert run("timetable", "import", "--course", "SC1", str(tmp_path / "today.csv")).exit_code == 0
    with FakeCamera(images=[src / "3.jpg"]) as cam:
        assert run("room", "set-camera", "R1", "--kind", "ipwebcam", "--host", cam.base_url).exit_code == 0
        r = run("scheduler", "--once", "--json")
        assert r.exit_code == 0, r.output
        report = json.loads(r.stdout.strip().splitlines()[-1])
        assert [m["key"] for m in report["opened"]] == [f"SC1@{start:%Y-%m-%dT%H:%M}Z"]
        assert [d["index"] for d in report["dispatched"]] == [0]
        assert cam.light_log() == [True, False]
        again = json.loads(run("scheduler", "--once", "--json").stdout.strip().splitlines()[-1])
        assert again["opened"] == [] and again["dispatched"] == []  # exactly once, across processes' restarts
    with session_scope(sqlite_url) as s:
        [sess] = s.scalars(select(ClassSession)).all()
        assert sess.status == SessionStatus.COMPLETED and sess.camera_name == "R1"
        assert {r.student.student_number: r.final_status for r in sess.records} == {"P1": "attended"}
