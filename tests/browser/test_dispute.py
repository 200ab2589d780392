"""A student disputes a status in a real Chromium and reads the answer (issue 14, item 3).

The student, on a phone-sized viewport, opens "My sessions": their status, the crops of their own
face (only theirs: the page shows exactly as many pictures as the faces named as them), and a
dispute form. The instructor, on a desktop, answers on "Follow-up" with a new status and a
reason; the student reloads and reads it. Screenshots: test-artifacts/screenshots/dispute_*.png.

The session is made in this process against the server's database and data folder with the
seat-strip stand-in for vision (tests/services/fake_vision.py): this test is about the pages.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.browser.app_server import running_app
from tests.browser.chromium import SHOTS, WAIT, idle, launch, sign_in

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "dispute-password-1"


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests" / "services"))
    from fake_vision import FakePipeline, scene

    from aas_core.config import Settings
    from aas_core.db import repo, session_scope
    from aas_core.media.store import ImageStore
    from aas_core.services.auth import create_user, to_auth_user
    from aas_core.services.enrollment import enroll_images
    from aas_core.services.sessions import SessionService

    root = tmp_path_factory.mktemp("dispute")
    with running_app(root, models_dir, PASSWORD, db_name="dispute.db") as (base, env):
        url, data = env["AAS_DATABASE_URL"], Path(env["AAS_DATA_DIR"])
        store, settings, pipe = ImageStore(data), Settings(database_url=url, data_dir=data), FakePipeline()
        with session_scope(url) as s:
            teach = to_auth_user(s, create_user(s, "teach", PASSWORD, "instructor", name="Dr Teach"))
            course = repo.add_course(s, "DS1", "Disputes", instructor_id=teach.instructor_id)
            for sn, seat in (("S1", 0), ("S2", 1)):
                st = repo.add_student(s, sn, f"Student {sn}", consent=True)
                repo.enroll_in_course(s, course, st)
                [o] = enroll_images(s, st, [(f"{sn}.png", scene({seat}))], pipe, store, settings)
                assert o.accepted
            create_user(s, "s2", PASSWORD, "student", student_number="S2")
        svc = SessionService(url, store, pipe, settings, seat_continuity=False)
        out = svc.run_from_images("DS1", [scene({0, 1}), scene({0}), scene({0})])  # S2 left after the first
        assert out.statuses == {"S1": "attended", "S2": "left_early"}
        yield {"base": base, "url": url, "session_id": out.session_id}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def test_a_student_disputes_on_a_phone_and_reads_the_instructors_answer(school: dict[str, Any], browser: Any) -> None:
    from aas_core.db import session_scope
    from aas_core.db.models import AttendanceRecord, Dispute, FaceObservation, Student

    with session_scope(school["url"]) as s:
        mine = len(s.scalars(select(FaceObservation.id).join(Student).where(Student.student_number == "S2")).all())
    assert mine == 1
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                has_touch=True)
    desk = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        me = phone.new_page()
        me.set_default_timeout(WAIT)
        sign_in(me, f"{school['base']}/my_sessions", "s2", PASSWORD)
        me.get_by_role("heading", name="My sessions").wait_for()
        me.get_by_text("left early").first.click()  # the session's expander
        me.get_by_text("Your face was seen 1 time(s)").wait_for()
        idle(me)
        # exactly their own face: one picture in the page's main area, nobody else's
        assert me.locator('[data-testid="stMain"] [data-testid="stImage"]').count() == mine
        assert me.evaluate("() => document.documentElement.scrollWidth") <= 390
        me.get_by_role("textbox", name="Why is this status wrong?").fill("I stayed until the end, back row.")
        me.get_by_role("button", name="Dispute this status").click()
        me.get_by_text("waiting for your instructor").wait_for()
        idle(me)
        me.screenshot(path=str(SHOTS / "dispute_01_phone_sent.png"), full_page=True)

        room = desk.new_page()
        room.set_default_timeout(WAIT)
        sign_in(room, school["base"], "teach", PASSWORD)
        room.locator('[data-testid="stSidebarNav"]').get_by_text("Follow-up", exact=True).click()
        room.get_by_text("I stayed until the end, back row.").wait_for()
        room.get_by_text("Change the status").click()
        room.get_by_role("textbox", name="Reason (the student reads it)").fill("Seen on the corridor camera.")
        room.get_by_role("button", name="Send answer").click()
        room.get_by_text("No open disputes").wait_for()
        idle(room)
        room.screenshot(path=str(SHOTS / "dispute_02_desk_answered.png"), full_page=True)
        with session_scope(school["url"]) as s:
            [d] = s.scalars(select(Dispute)).all()
            assert (d.status, d.status_after, d.resolved_by) == ("upheld", "attended", "teach")
            rec = s.scalar(select(AttendanceRecord).join(Student).where(Student.student_number == "S2"))
            assert rec.final_status == "attended"

        me.reload()
        me.get_by_role("heading", name="My sessions").wait_for()
        me.get_by_text("attended").first.click()
        me.get_by_text("Seen on the corridor camera.").wait_for()
        idle(me)
        me.screenshot(path=str(SHOTS / "dispute_03_phone_answer.png"), full_page=True)
    finally:
        phone.close()
        desk.close()
