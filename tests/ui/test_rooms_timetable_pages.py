"""The Rooms page (administrators: rooms, a camera without secrets, the camera test against a real
HTTP camera) and the Courses page's Timetable tab (import, next meetings, refusals), through
streamlit.testing's AppTest on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from aas_core.services.auth import AuthUser
from tests.capture.fake_camera import FakeCamera
from tests.ui.test_pages_apptest import MARKDOWN_ESCAPE, _clear_caches, button, make_user, ok, texts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path) -> Iterator[None]:
    monkeypatch.setenv("AAS_DATABASE_URL", f"sqlite:///{tmp_path / 'ui.db'}")
    monkeypatch.setenv("AAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AAS_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("AAS_LIGHT_SETTLE_S", "0.05")
    _clear_caches()
    yield
    _clear_caches()


def errors(at: AppTest) -> str:
    """The error messages as their text (user text in them is Markdown-escaped by ``plain``)."""
    return " ".join(MARKDOWN_ESCAPE.sub(r"\1", e.value) for e in at.error)


def page(name: str, user: AuthUser) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=120)
    at.session_state["aas_user"] = user
    return at


def test_rooms_page_adds_a_room_a_camera_and_tests_it(tmp_path: Path) -> None:
    from aas_core.services import rooms

    url = f"sqlite:///{tmp_path / 'ui.db'}"
    admin = make_user(url, "admin", "admin")
    teach = make_user(url, "teach", "instructor")
    assert "managed by administrators" in texts(ok(page("rooms.py", teach).run()))
    at = ok(page("rooms.py", admin).run())
    at.text_input[0].input("B-204")
    at.text_input[1].input("Building B")
    button(at, "Add room").click()
    ok(at.run())
    assert [r.name for r in rooms.list_rooms(url, admin, rooms.Settings(database_url=url))] == ["B-204"]
    with FakeCamera() as cam:
        # a host with a password is refused, nothing is stored
        host = next(t for t in at.text_input if t.label == "Host")
        host.input(f"http://admin:pw-123456@{cam.host}")
        button(at, "Save camera").click()
        ok(at.run())
        assert "must not hold credentials" in errors(at)
        assert rooms.list_rooms(url, admin, rooms.Settings(database_url=url))[0].camera is None
        next(t for t in at.text_input if t.label == "Host").input(cam.base_url)
        next(t for t in at.text_area if t.label.startswith("Options")).input('{"timeout_s": 2}')
        button(at, "Save camera").click()
        ok(at.run())
        [room] = rooms.list_rooms(url, admin, rooms.Settings(database_url=url))
        assert (room.camera, room.kind, room.host, room.options) == ("B-204", "ipwebcam", cam.base_url,
                                                                     {"timeout_s": 2.0})
        n_images = len(at.image)
        button(at, "room_test").click()
        ok(at.run())
        assert len(at.image) == n_images + 1, "no test frame shown"
        assert any("light: on and off again" in s.value for s in at.success)
        assert cam.light_log() == [True, False]
    [health] = rooms.camera_health(url, admin)
    assert health.last_ok_at is not None and not health.failing
    table = ok(at.run()).dataframe[0].value  # the rooms table shows it
    assert list(table["state"]) == ["ok"] and list(table["camera"]) == ["B-204"]


def test_timetable_tab_imports_a_csv_shows_the_next_meetings_and_refuses_bad_files(tmp_path: Path) -> None:
    from aas_core.db import repo, session_scope
    from aas_core.services import rooms
    from aas_core.services import timetable as tt_svc

    url = f"sqlite:///{tmp_path / 'ui.db'}"
    admin = make_user(url, "admin", "admin")
    teach = make_user(url, "teach", "instructor")
    with session_scope(url) as s:
        repo.add_course(s, "TT1", "Timetabled", instructor_id=teach.instructor_id)
    rooms.add_room(url, admin, "B-204")
    first = date.today() + timedelta(days=1)
    csv = (f"what,day,start,end,room\ntimezone,Europe/Berlin,,,\nterm_start,{first},,,\n"
           f"term_end,{first + timedelta(days=27)},,,\nweekly,{first.strftime('%a')},09:00,10:30,B-204\n")
    at = ok(page("courses.py", teach).run())
    assert "No timetable yet" in texts(at)
    at.file_uploader(key="tt_file_TT1").set_value(("tt.csv", csv.encode(), "text/csv"))
    ok(at.run())
    button(at, "tt_import_TT1").click()
    ok(at.run())
    tt, _ = tt_svc.get_timetable(url, teach, "TT1")
    assert tt is not None and [w.room for w in tt.weekly] == ["B-204"]
    at = ok(page("courses.py", teach).run())
    assert "Next meetings" in texts(at)
    shown = [df for df in at.dataframe if "time" in df.value.columns]  # the next meetings (not an editor)
    assert shown and list(shown[-1].value["room"]) == ["B-204"] * 4
    assert list(shown[-1].value["time"]) == ["09:00-10:30"] * 4
    # a file naming an unknown room is refused with the reason, the timetable stays
    at.file_uploader(key="tt_file_TT1").set_value(("bad.csv", csv.replace("B-204", "Z-9").encode(), "text/csv"))
    ok(at.run())
    button(at, "tt_import_TT1").click()
    ok(at.run())
    assert "bad.csv not imported: unknown room(s): Z-9" in errors(at)
    assert tt_svc.get_timetable(url, teach, "TT1")[0] == tt
    # the form saves what it shows (a change of time zone here)
    next(t for t in at.text_input if t.label == "Time zone (IANA)").input("Mars/Base")
    button(at, "Save timetable").click()
    ok(at.run())
    assert "not an IANA time zone" in errors(at)
    next(t for t in at.text_input if t.label == "Time zone (IANA)").input("America/New_York")
    button(at, "Save timetable").click()
    ok(at.run())
    saved = tt_svc.get_timetable(url, teach, "TT1")[0]
    assert saved is not None and saved.timezone == "America/New_York" and saved.weekly == tt.weekly
