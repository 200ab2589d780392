"""The Check-in page's parts that need no camera (streamlit.testing AppTest): the opt-out link of an
at-risk e-mail (no sign-in, a click confirms, a forged token changes nothing) and the student's own
e-mail setting. The code-and-selfie flow runs in Chromium (tests/browser/test_checkin.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "plum-orbit-lantern-42"  # noqa: S105 - test account
KEY = "page-test-secret-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path) -> Iterator[str]:
    import streamlit as st

    from aas_core.config import get_settings

    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("AAS_DATABASE_URL", url)
    monkeypatch.setenv("AAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AAS_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("AAS_SECRET_KEY", KEY)
    monkeypatch.chdir(tmp_path)  # no secrets file of the checkout
    get_settings.cache_clear()
    st.cache_resource.clear()
    yield url
    get_settings.cache_clear()
    st.cache_resource.clear()


def _student(url: str):  # type: ignore[no-untyped-def]
    from aas_core.db import init_db, repo, session_scope
    from aas_core.services.auth import create_user, to_auth_user

    init_db(url)
    with session_scope(url) as s:
        st = repo.add_student(s, "S1", "Sam", email="sam@mail.test")
        user = to_auth_user(s, create_user(s, "sam", PASSWORD, "student", student_number="S1"))
        return st.id, user


def _page() -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / "checkin.py"), default_timeout=120)


def test_the_opt_out_link_needs_no_sign_in_and_a_click(_env: str) -> None:
    from aas_core.config import get_settings
    from aas_core.services import notify

    url = _env
    sid, sam = _student(url)
    token = notify.opt_out_token(get_settings(), sid, "S1")
    assert token
    at = _page()
    at.query_params["optout"] = f"{sid}.{'f' * 32}"  # forged
    at.run()
    assert not at.exception and [t.value for t in at.title] == ["Attendance e-mails"]
    assert not at.text_input  # no sign-in form
    at.button(key="optout_confirm").click().run()
    assert "This link is not valid" in at.error[0].value
    assert notify.opted_out(url, sam, "S1") is False

    at = _page()
    at.query_params["optout"] = token
    at.run()
    assert notify.opted_out(url, sam, "S1") is False  # opening the link alone changes nothing
    at.button(key="optout_confirm").click().run()
    assert "you will get no more attendance e-mails" in at.success[0].value
    assert notify.opted_out(url, sam, "S1") is True


def test_a_student_switches_the_emails_on_their_page(_env: str) -> None:
    from aas_core.services import notify

    url = _env
    _, sam = _student(url)
    at = _page()
    at.session_state["aas_user"] = sam
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == [":material/how_to_reg: Check in"]
    assert at.text_input[0].label == "Code on the room's screen"
    toggle = at.toggle(key="notices_on")
    assert toggle.value is True
    toggle.set_value(False).run()
    assert not at.exception and notify.opted_out(url, sam, "S1") is True
    at.toggle(key="notices_on").set_value(True).run()
    assert notify.opted_out(url, sam, "S1") is False
    # No check-in is open: the code is refused with the reason, not an error page.
    at.text_input[0].input("123456")
    at.button[0].click().run()
    assert not at.exception and "No check\\-in is open for your courses" in at.error[0].value  # plain(): escaped


def test_an_instructor_runs_an_online_lecture_from_the_page(_env: str) -> None:
    from aas_core.db import init_db, repo, session_scope
    from aas_core.services.auth import create_user, to_auth_user

    url = _env
    init_db(url)
    with session_scope(url) as s:
        teach = to_auth_user(s, create_user(s, "teach", PASSWORD, "instructor"))
        course = repo.add_course(s, "ON1", "Online", instructor_id=teach.instructor_id)
        repo.enroll_in_course(s, course, repo.add_student(s, "S1", "Sam"))
    at = _page()
    at.session_state["aas_user"] = teach
    at.run()
    assert not at.exception and "No session of your courses is running" in at.info[0].value
    next(b for b in at.button if b.label == "Start an online session").click().run()
    assert not at.exception
    assert [b.label for b in at.button if "Open check-in" in b.label] == ["Open check-in and show the code"]
    next(b for b in at.button if b.label == "Open check-in and show the code").click().run()
    assert not at.exception
    code = [m.value for m in at.markdown if "checkin-code" in m.value]
    assert len(code) == 1 and re.search(r">\d{3}&nbsp;\d{3}<", code[0])
    assert any("0 of 1 students checked in" in c.value for c in at.caption)
    at.button(key="checkin_finish").click().run()
    assert not at.exception
    assert "Decided: absent 1" in at.success[0].value
