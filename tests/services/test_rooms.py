"""Rooms and cameras as data on SQLite and MariaDB: administrators only, every change audited, no
secret in the database; the one resolver merges a camera row with the environment's secrets (and
still finds cameras defined only in the environment); the camera test grabs through a real HTTP
camera, switches its light on and off, and records the camera's health."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import select

from aas_core.capture.cameras import camera_configs
from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import AuditLog, Base, Role
from aas_core.services import courses, rooms
from aas_core.services import timetable as tt_svc
from aas_core.services.auth import AccessDenied, AuthUser
from tests.capture.fake_camera import FakeCamera

ADMIN = AuthUser(0, "root-admin", Role.ADMIN)
TEACHER = AuthUser(5, "teach", Role.INSTRUCTOR, instructor_id=None)
SECRET = "Dahua-S3cret-pw"  # noqa: S105 - a test camera's password


@pytest.fixture
def fake() -> Iterator[FakeCamera]:
    with FakeCamera() as cam:
        yield cam


def dump(url: str) -> str:
    with session_scope(url) as s:
        return "\n".join(repr(row) for table in Base.metadata.sorted_tables for row in s.execute(select(table)).all())


def test_only_administrators_manage_rooms_and_every_change_is_audited(migrated: str) -> None:
    url = migrated
    settings = Settings(database_url=url)
    with pytest.raises(AccessDenied, match="administrators only"):
        rooms.add_room(url, TEACHER, "B-204")
    rooms.add_room(url, ADMIN, " B-204 ", "Building B")
    with pytest.raises(repo.AlreadyExists, match="already exists"):
        rooms.add_room(url, ADMIN, "B-204")
    with pytest.raises(ValueError, match="needs a name"):
        rooms.add_room(url, ADMIN, "  ")
    with pytest.raises(AccessDenied):
        rooms.set_camera(url, TEACHER, "B-204", kind="ipwebcam", host="http://10.0.0.5:8080")
    view = rooms.set_camera(url, ADMIN, "B-204", kind="ipwebcam", host="http://10.0.0.5:8080",
                            options={"timeout_s": 3})
    assert (view.camera, view.kind, view.options) == ("B-204", "ipwebcam", {"timeout_s": 3.0})
    with pytest.raises(AccessDenied):
        rooms.list_rooms(url, TEACHER, settings)
    assert rooms.room_names(url, TEACHER) == ["B-204"]  # instructors pick rooms for their timetables
    [listed] = rooms.list_rooms(url, ADMIN, settings)
    assert (listed.name, listed.description, listed.host, listed.secrets_set) == (
        "B-204", "Building B", "http://10.0.0.5:8080", ())
    assert rooms.remove_camera(url, ADMIN, "B-204") and not rooms.remove_camera(url, ADMIN, "B-204")
    rooms.remove_room(url, ADMIN, "B-204")
    with pytest.raises(repo.NotFound, match="aas room add"):
        rooms.remove_room(url, ADMIN, "B-204")
    with session_scope(url) as s:
        actions = [a.action for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions == ["room.add", "camera.set", "camera.remove", "room.remove"]


def test_a_host_holding_credentials_and_secret_options_are_refused(migrated: str) -> None:
    url = migrated
    rooms.add_room(url, ADMIN, "R1")
    for host in (f"http://admin:{SECRET}@10.0.0.5:8080", f"http://10.0.0.5/snap.jpg?user=a&pwd={SECRET}"):
        with pytest.raises(ValueError, match="must not hold credentials"):
            rooms.set_camera(url, ADMIN, "R1", kind="snapshot_url", host=host)
    with pytest.raises(ValueError, match="password are secrets"):
        rooms.set_camera(url, ADMIN, "R1", kind="dahua", host="10.0.0.9", options={"password": SECRET})
    with pytest.raises(ValueError, match="unknown camera option"):
        rooms.set_camera(url, ADMIN, "R1", kind="dahua", host="10.0.0.9", options={"zoom": 2})
    with pytest.raises(ValueError, match="timeout_s"):
        rooms.set_camera(url, ADMIN, "R1", kind="ipwebcam", host="http://10.0.0.5", options={"timeout_s": -1})
    with pytest.raises(ValueError, match="host is a URL"):
        rooms.set_camera(url, ADMIN, "R1", kind="ipwebcam", host="10.0.0.5:8080")
    # a Dahua camera's options are checked although its password is not known here
    with pytest.raises(ValueError, match="channel"):
        rooms.set_camera(url, ADMIN, "R1", kind="dahua", host="10.0.0.9", options={"channel": -1})
    with pytest.raises(ValueError, match="kind"):
        rooms.set_camera(url, ADMIN, "R1", kind="webcam3000", host="10.0.0.9")
    assert rooms.set_camera(url, ADMIN, "R1", kind="dahua", host="10.0.0.9", options={"channel": 2}).options == \
        {"channel": 2}
    assert SECRET not in dump(url)


def test_the_resolver_merges_a_camera_row_with_the_environments_secrets(db_url: str) -> None:
    from aas_core.db import init_db

    url = db_url
    init_db(url)
    rooms.add_room(url, ADMIN, "A-101")
    rooms.add_room(url, ADMIN, "B-204")
    # a Dahua camera: the row has its host; the password (and user name) live only in the environment
    rooms.set_camera(url, ADMIN, "A-101", kind="dahua", host="10.0.0.9", name="cam-a101",
                     options={"channel": 1, "timeout_s": 4})
    env = {"cam-a101": {"username": "admin", "password": SECRET},  # secrets only: no kind
           "legacy": {"kind": "ipwebcam", "url": "http://10.0.0.7:8080"}}  # a camera defined only in the environment
    settings = Settings(database_url=url, cameras=env)
    cfg = rooms.camera_config(settings, url, "cam-a101")
    assert (cfg.kind, cfg.host, cfg.channel, cfg.timeout_s, cfg.username) == ("dahua", "10.0.0.9", 1, 4.0, "admin")
    assert cfg.password is not None and cfg.password.get_secret_value() == SECRET
    assert SECRET not in repr(cfg)
    assert rooms.camera_config(settings, url, "legacy").display_url == "http://10.0.0.7:8080"
    # the secrets-only entry is not a camera by itself
    assert set(camera_configs(settings)) == {"legacy"}
    known = rooms.known_cameras(settings, url)
    assert {n: (i.source, i.room, i.problem) for n, i in known.items()} == {
        "cam-a101": ("database", "A-101", None), "legacy": ("environment", None, None)}
    # without its secrets the camera is incomplete: the message says what is missing, not a value
    bare = Settings(database_url=url)
    with pytest.raises(LookupError, match=r"needs: username, password.*\[cameras.cam-a101\]"):
        rooms.camera_config(bare, url, "cam-a101")
    assert known["cam-a101"].problem is None and rooms.known_cameras(bare, url)["cam-a101"].problem
    with pytest.raises(LookupError, match="no camera named 'nope'"):
        rooms.camera_config(settings, url, "nope")
    # a course naming the camera gets it through the same resolver
    with session_scope(url) as s:
        repo.add_course(s, "CS1", "Intro")
    courses.update_config(url, ADMIN, "CS1", assignments=["camera=cam-a101"])
    config = courses.get_course(url, ADMIN, "CS1").config
    assert courses.course_camera(settings, config, "CS1", url=url).host == "10.0.0.9"
    [view] = [v for v in rooms.list_rooms(url, ADMIN, settings) if v.camera]
    assert view.secrets_set == ("username", "password")  # which keys, never their values
    assert SECRET not in dump(url)


def test_the_camera_test_grabs_with_the_light_on_then_off_and_records_health(migrated: str,
                                                                             fake: FakeCamera) -> None:
    url = migrated
    settings = Settings(database_url=url, light_settle_s=0.05)
    rooms.add_room(url, ADMIN, "Lab")
    with pytest.raises(LookupError, match="has no camera"):
        rooms.try_camera(url, ADMIN, settings, "Lab")
    rooms.set_camera(url, ADMIN, "Lab", kind="ipwebcam", host=fake.base_url, options={"timeout_s": 2})
    result = rooms.try_camera(url, ADMIN, settings, "Lab")
    assert result.ok and result.image is not None and result.image.shape[:2] == (240, 320)
    assert result.light == "on and off again" and fake.light_log() == [True, False] and not fake.torch_on
    [h] = rooms.camera_health(url, ADMIN)
    assert h.camera == "Lab" and h.last_ok_at is not None and not h.failing
    # the camera fails: the error is reported and recorded, the light is off again
    fake.fail_next(1, 503)  # one attempt per test grab
    bad = rooms.try_camera(url, ADMIN, settings, "Lab")
    assert not bad.ok and "503" in (bad.error or "")
    assert fake.light_log()[-2:] == [True, False] and not fake.torch_on
    [h] = rooms.camera_health(url, ADMIN)
    assert h.failing and "503" in (h.last_error or "") and h.last_ok_at is not None
    with pytest.raises(AccessDenied):
        rooms.camera_health(url, TEACHER)
    with session_scope(url) as s:
        assert [a.action for a in s.scalars(select(AuditLog).where(AuditLog.action == "camera.test"))] == \
            ["camera.test"] * 2
    # back up: the next good grab clears "failing"
    assert rooms.try_camera(url, ADMIN, settings, "Lab").ok
    assert not rooms.camera_health(url, ADMIN)[0].failing


def test_a_room_in_a_timetable_cannot_be_removed(migrated: str) -> None:
    url = migrated
    rooms.add_room(url, ADMIN, "B-204")
    with session_scope(url) as s:
        repo.add_course(s, "CS1", "Intro")
    tt_svc.set_timetable(url, ADMIN, "CS1", {"timezone": "UTC", "term_start": date(2026, 3, 2),
                                             "term_end": date(2026, 3, 31),
                                             "weekly": [{"weekday": "Mon", "start": "09:00", "end": "10:00",
                                                         "room": "B-204"}]})
    with pytest.raises(ValueError, match="in the timetable of CS1"):
        rooms.remove_room(url, ADMIN, "B-204")
    assert rooms.room_names(url, ADMIN) == ["B-204"]
