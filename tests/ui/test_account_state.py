"""Open tabs follow the account (issue 10, points 8, 9 and 13), with streamlit's AppTest on SQLite
(the service checks run on both databases in tests/services/test_signin_limits.py).

* a tab whose account is disabled, demoted, re-passworded or erased is signed out at its next
  rerun with a message, and nothing of its session state is left;
* signing out clears every session-state key, not just the user;
* the sign-in form is throttled after repeated failures with a message that says how long to wait;
* an uncaught error in a page shows only an error id, which is in the server log with the details.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from tests.ui.test_pages_apptest import _clear_caches

from aas_core.services.auth import SIGN_IN_LIMITS, AuthUser

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "plum-orbit-lantern-42"  # noqa: S105 - passes the password policy
NEW_PASSWORD = "velvet canyon drums 7"  # noqa: S105
CHANGED = "Your account was changed or disabled; please sign in again."
HOME_TITLE = ":material/school: Automated Attendance"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path) -> Iterator[None]:
    monkeypatch.setenv("AAS_DATABASE_URL", _url(tmp_path))
    monkeypatch.setenv("AAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AAS_MODELS_DIR", str(models_dir))
    _clear_caches()
    SIGN_IN_LIMITS.reset()  # the form uses the process-wide limits: no counts from other tests
    yield
    SIGN_IN_LIMITS.reset()
    _clear_caches()


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ui.db'}"


def _make_user(url: str, username: str, role: str = "admin") -> AuthUser:
    from aas_core.db import init_db, session_scope
    from aas_core.services.auth import create_user, to_auth_user

    init_db(url)
    with session_scope(url) as s:
        user = create_user(s, username, PASSWORD, role)
        s.flush()
        return to_auth_user(s, user)


def _page(name: str, user: AuthUser | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=120)
    if user is not None:
        at.session_state["aas_user"] = user
    return at


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _button(at: AppTest, key_or_label: str):  # type: ignore[no-untyped-def]
    return next(b for b in at.button if key_or_label in (b.key, b.label))


def _signed_out(at: AppTest) -> bool:
    return [t.value for t in at.title] == ["AAS — sign in"] and "aas_user" not in at.session_state


@pytest.mark.parametrize("change", ["disabled", "demoted", "password", "erased"])
def test_a_changed_account_is_signed_out_of_an_open_tab(tmp_path: Path, change: str) -> None:
    from aas_core.db import session_scope
    from aas_core.db.models import Role, User
    from aas_core.services.auth import set_password

    url = _url(tmp_path)
    user = _make_user(url, "boss")
    at = _ok(_page("home.py", user).run())
    assert [t.value for t in at.title] == [HOME_TITLE]
    at.session_state["cam_preview_img"] = "the previous user's camera frame"
    _ok(at.run())
    assert [t.value for t in at.title] == [HOME_TITLE]  # unchanged account: still signed in

    with session_scope(url) as s:
        row = s.scalar(select(User).where(User.username == "boss"))
        if change == "disabled":
            row.is_active = False
        elif change == "demoted":
            row.role = Role.STUDENT
        elif change == "password":
            set_password(s, "boss", NEW_PASSWORD)
        else:
            s.delete(row)
    _ok(at.run())
    assert _signed_out(at)
    assert [w.value for w in at.warning] == [CHANGED]
    assert "cam_preview_img" not in at.session_state
    _ok(at.run())  # and it stays signed out
    assert _signed_out(at)


def test_a_changed_account_is_signed_out_on_a_page_that_needs_a_role(tmp_path: Path) -> None:
    user = _make_user(_url(tmp_path), "prof", "instructor")
    at = _ok(_page("courses.py", user).run())
    assert "aas_user" in at.session_state
    from aas_core.db import session_scope
    from aas_core.db.models import User

    with session_scope(_url(tmp_path)) as s:
        s.scalar(select(User).where(User.username == "prof")).is_active = False
    _ok(at.run())
    assert _signed_out(at)
    assert [w.value for w in at.warning] == [CHANGED]


def test_sign_out_clears_every_session_key(tmp_path: Path) -> None:
    user = _make_user(_url(tmp_path), "boss")
    at = _ok(_page("home.py", user).run())
    at.session_state["cam_preview_img"] = "the previous user's camera frame"
    at.session_state["students_pick"] = "S1"
    _ok(at.run())
    _button(at, "aas_sign_out").click()
    _ok(at.run())
    assert _signed_out(at) and not at.warning
    assert "cam_preview_img" not in at.session_state and "students_pick" not in at.session_state


def _sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    _button(at, "Sign in").click()
    return _ok(at.run())


def test_the_sign_in_form_is_throttled_after_five_failures(tmp_path: Path) -> None:
    _make_user(_url(tmp_path), "boss")
    at = _ok(_page("home.py").run())
    for _ in range(5):
        _sign_in(at, "boss", "not-the-password")
        assert [e.value for e in at.error] == ["Wrong username or password."]
    _sign_in(at, "boss", PASSWORD)  # right password, but too late
    assert [e.value for e in at.error] == ["Too many failed sign-ins. Please wait 15 minutes and try again."]
    assert "aas_user" not in at.session_state
    # an unknown name gets the same treatment: nothing says whether "boss" exists
    for _ in range(5):
        _sign_in(at, "nobody", "not-the-password")
    _sign_in(at, "nobody", "not-the-password")
    assert [e.value for e in at.error] == ["Too many failed sign-ins. Please wait 15 minutes and try again."]
    SIGN_IN_LIMITS.reset()  # what the end of the window does
    _sign_in(at, "boss", PASSWORD)
    assert at.session_state["aas_user"].username == "boss"


def test_signing_in_starts_from_an_empty_session(tmp_path: Path) -> None:
    _make_user(_url(tmp_path), "boss")
    at = _ok(_page("home.py").run())
    at.session_state["cam_preview_img"] = "left over from before"
    _sign_in(at, "boss", PASSWORD)
    assert at.session_state["aas_user"].username == "boss"
    assert "cam_preview_img" not in at.session_state


# --- uncaught errors --------------------------------------------------------------------------------

def _home(user: AuthUser | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=120)
    if user is not None:
        at.session_state["aas_user"] = user
    return at


def _everything_shown(at: AppTest) -> str:
    parts = [str(e.value) for coll in (at.title, at.markdown, at.caption, at.error, at.warning, at.info,
                                       at.exception, at.code, at.text) for e in coll]
    return "\n".join(parts)


def test_an_uncaught_error_shows_only_an_error_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy.exc import DataError

    import aas_core.ui.auth as ui_auth

    user = _make_user(_url(tmp_path), "boss")
    sql = "SELECT users.password_hash FROM users WHERE users.username = %(username_1)s"

    def broken(s, auth_user):  # type: ignore[no-untyped-def]
        raise DataError(sql, {"username_1": "marjorie.secret@example.org"}, Exception("Data too long"))

    monkeypatch.setattr(ui_auth, "still_valid", broken)
    with caplog.at_level(logging.ERROR, logger="aas.ui"):
        at = _home(user).run()
    assert not at.exception
    shown = _everything_shown(at)
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("Something went wrong (error id ") and "administrator" in message
    error_id = message.split("error id ")[1].split(")")[0]
    assert len(error_id) == 8
    for secret in ("SELECT", "password_hash", "marjorie", "Data too long", "Traceback", "DataError"):
        assert secret not in shown
    # the administrator finds the details under that id in the server log
    record = next(r for r in caplog.records if error_id in r.getMessage())
    assert record.exc_info and "password_hash" in caplog.text and "Traceback" in caplog.text


def test_st_stop_and_st_rerun_pass_through_the_error_handler(tmp_path: Path) -> None:
    _make_user(_url(tmp_path), "boss")
    at = _ok(_home().run())  # the sign-in form ends with st.stop()
    assert [t.value for t in at.title] == ["AAS — sign in"] and not at.error
    _sign_in(at, "boss", PASSWORD)  # a successful sign-in ends with st.rerun()
    assert not at.error and [t.value for t in at.title] == [HOME_TITLE]
