"""Self check-in in a real Chromium (issue 14, item 4): the instructor's display on a desktop, the
student on a phone-sized viewport (390 x 844, touch). The code is read off the instructor's screen
as a student in the room would; a code that has rotated is refused as expired and checks no one
in; the current code and the student's own photo check them in; the student never sees the code
display. Screenshots go to test-artifacts/screenshots/checkin_*.png.

The expired code is the one a classmate (S2) got sent before the student (S1) checked in: the
wait for the code to rotate (up to 30 s) overlaps S1's check-in instead of adding to it.

The school is made through the services in this process against the server's database: an
instructor, a course, two students with accounts, three accepted photos of S1 (Colin Powell, real
photos through the real 'fast' pipeline), and a running two-snapshot session.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.browser.app_server import running_app
from tests.browser.chromium import SHOTS, WAIT, idle, launch, sign_in

pytestmark = pytest.mark.browser

PASSWORD = "checkin-password-1"
POWELL = "lfw_Colin_Powell"


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, data_dir: Path) -> Iterator[dict[str, Any]]:
    from aas_core.config import Settings
    from aas_core.db import repo, session_scope
    from aas_core.db.models import ClassSession, SessionStatus, utcnow
    from aas_core.domain.course_config import SessionPlan
    from aas_core.media.decode import decode_image
    from aas_core.media.store import ImageStore
    from aas_core.services import students
    from aas_core.services.auth import create_user, to_auth_user
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import resolve_profile

    root = tmp_path_factory.mktemp("checkin")
    with running_app(root, models_dir, PASSWORD, db_name="checkin.db") as (base, env):
        url, store = env["AAS_DATABASE_URL"], ImageStore(Path(env["AAS_DATA_DIR"]))
        cfg = Settings(database_url=url, data_dir=Path(env["AAS_DATA_DIR"]), models_dir=models_dir)
        with session_scope(url) as s:
            teach = to_auth_user(s, create_user(s, "teach", PASSWORD, "instructor", name="Dr Teach"))
            course = repo.add_course(s, "HY1", "Hybrid lecture", instructor_id=teach.instructor_id)
            st = repo.add_student(s, "S1", "Sam One", consent=True)
            repo.enroll_in_course(s, course, st)
            repo.enroll_in_course(s, course, repo.add_student(s, "S2", "Sue Two", consent=True))
            create_user(s, "s1", PASSWORD, "student", student_number="S1")
            create_user(s, "s2", PASSWORD, "student", student_number="S2")
        pipe = Pipeline(resolve_profile("fast", models_dir)[0], models_dir)
        photos = [(f"{i}.jpg", decode_image((data_dir / "faces_dev" / POWELL / f"{i}.jpg").read_bytes()))
                  for i in (1, 2, 3)]
        out = students.enroll_photos(url, teach, "S1", photos, pipe, store, cfg)
        assert all(o.accepted for o in out), [o.line() for o in out]
        with session_scope(url) as s:
            sess = ClassSession(course_id=course.id, status=SessionStatus.RUNNING,
                                capture_plan=SessionPlan.for_images(2), started_at=utcnow())
            s.add(sess)
            s.flush()
            session_id = sess.id
        yield {"base": base, "url": url, "session_id": session_id,
               "selfie": data_dir / "faces_dev" / POWELL / "4.jpg", "stranger": data_dir / "faces_dev" / POWELL}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def shown_code(page: Any) -> str:
    return re.sub(r"\D", "", page.locator('[data-testid="checkin-code"]').inner_text())


def enter(page: Any, code: str) -> None:
    page.get_by_role("textbox", name="Code on the room's screen", exact=True).fill(code)
    page.get_by_role("button", name="Next").click()
    idle(page)


def test_phone_check_in_with_the_code_on_the_screen(school: dict[str, Any], browser: Any) -> None:
    from aas_core.db import session_scope
    from aas_core.db.models import CheckIn, CheckInAttempt, Student

    desk = browser.new_context(viewport={"width": 1280, "height": 800})
    phone_size = dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone = browser.new_context(**phone_size)
    friend_phone = browser.new_context(**phone_size)
    try:
        room = desk.new_page()
        room.set_default_timeout(WAIT)
        sign_in(room, school["base"], "teach", PASSWORD)  # the instructor goes through the menu
        room.locator('[data-testid="stSidebarNav"]').get_by_text("Check-in", exact=True).click()
        room.get_by_text("Check-in (display)").wait_for()
        room.get_by_role("button", name="Open check-in and show the code").click()
        room.locator('[data-testid="checkin-code"]').wait_for()
        idle(room)
        room.screenshot(path=str(SHOTS / "checkin_01_room_display.png"))
        old = shown_code(room)  # what S1 sends to a classmate now

        me = phone.new_page()
        me.set_default_timeout(WAIT)
        sign_in(me, f"{school['base']}/checkin", "s1", PASSWORD)  # the student follows a link (or a QR code) to the page
        me.get_by_role("heading", name="Check in").wait_for()
        assert me.locator('[data-testid="checkin-code"]').count() == 0  # a student never sees the code display
        me.screenshot(path=str(SHOTS / "checkin_02_phone_code.png"), full_page=True)
        # The page fits the phone: nothing wider than the viewport.
        assert me.evaluate("() => document.documentElement.scrollWidth") <= 390

        # The code on the screen now, then a selfie of the student themself.
        enter(me, shown_code(room))
        me.get_by_text("Code accepted for HY1").wait_for()
        me.locator('[data-testid="stFileUploader"]').locator('input[type="file"]').set_input_files(
            str(school["selfie"]))
        idle(me)
        me.screenshot(path=str(SHOTS / "checkin_04_phone_selfie.png"), full_page=True)
        me.get_by_role("button", name="Check in").click()
        me.get_by_text("You are checked in for HY1 (snapshot 1).").wait_for(timeout=240_000)
        me.get_by_role("button", name="Check in").wait_for(state="detached")  # the selfie step is gone
        me.get_by_text("My check-ins").wait_for()
        idle(me)
        me.wait_for_timeout(1000)  # the table draws on a canvas
        me.screenshot(path=str(SHOTS / "checkin_05_phone_done.png"), full_page=True)
        room.get_by_text("1 of 2 students checked in").wait_for()
        room.screenshot(path=str(SHOTS / "checkin_06_room_count.png"))
        with session_scope(school["url"]) as s:
            [c] = s.scalars(select(CheckIn)).all()
            assert (c.student.student_number, c.session_id, c.snapshot_index) == ("S1", school["session_id"], 0)
            assert c.similarity >= c.threshold and c.crop_path

        # The code S1 sent to a classmate: by the time it is typed the screen shows a new one -> expired.
        friend = friend_phone.new_page()
        friend.set_default_timeout(WAIT)
        sign_in(friend, f"{school['base']}/checkin", "s2", PASSWORD)
        friend.get_by_role("heading", name="Check in").wait_for()
        deadline = time.monotonic() + 40
        while shown_code(room) == old:
            assert time.monotonic() < deadline, "the code did not change within 40 s"
            room.wait_for_timeout(500)
        enter(friend, old)
        friend.get_by_text("That code has expired").wait_for()
        friend.screenshot(path=str(SHOTS / "checkin_03_phone_expired.png"), full_page=True)
        with session_scope(school["url"]) as s:
            assert [c.student.student_number for c in s.scalars(select(CheckIn))] == ["S1"]  # S2 is not in
            s2 = s.scalar(select(Student.id).where(Student.student_number == "S2"))
            assert [a.outcome for a in s.scalars(select(CheckInAttempt).where(CheckInAttempt.student_id == s2))] \
                == ["expired_code"]
        room.get_by_text("1 of 2 students checked in").wait_for()
    finally:
        friend_phone.close()
        phone.close()
        desk.close()
