"""User-provided text stays text in a real Chromium: a student named with Markdown image and
link syntax makes no viewer's browser fetch anything and shows no live link.

A beacon HTTP server on loopback counts every request; the hostile names point at it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.browser.app_server import running_app
from tests.browser.chromium import shared_browser
from tests.browser.test_e2e import PASSWORD, idle, nav, shot

pytestmark = pytest.mark.browser

WAIT = 90_000


class Beacon(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Beacon.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def beacon() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Beacon)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, beacon: str) -> Iterator[dict[str, str]]:
    name = f"![x]({beacon}/img.png) [click]({beacon}/link) {beacon}/bare"
    reason = f"![r]({beacon}/reason.png)"
    with running_app(tmp_path_factory.mktemp("plain"), models_dir, PASSWORD, db_name="plain.db") as (base, env):
        subprocess.run([sys.executable, "-c", "import sys; from aas_core.db import repo, session_scope\n"
                        "with session_scope(sys.argv[1]) as s:\n"
                        "    c = repo.add_course(s, 'CSX', sys.argv[3])\n"
                        "    st = repo.add_student(s, 's_evil', sys.argv[2], consent=True)\n"
                        "    repo.enroll_in_course(s, c, st)\n",
                        env["AAS_DATABASE_URL"], name, reason], env=env, check=True, capture_output=True, timeout=60)
        yield {"base": base, "name": name}


@pytest.fixture(scope="module")
def page(server: dict[str, str]) -> Iterator[Any]:
    ctx = shared_browser().new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT)
    pg.goto(server["base"])
    yield pg
    ctx.close()


def test_a_markdown_name_is_shown_as_text_and_fetches_nothing(page: Any, server: dict[str, str], beacon: str) -> None:
    page.get_by_role("textbox", name="Username", exact=True).fill("admin")
    page.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Automated Attendance").wait_for()
    nav(page, "Students", "Enroll face photos")
    # the student's heading shows the name literally
    heading = page.locator("h3").filter(has_text="s_evil").first
    heading.wait_for()
    page.wait_for_timeout(1500)  # give any image a chance to load
    assert Beacon.hits == []
    assert f"[click]({beacon}/link)" in heading.inner_text()
    nav(page, "Courses", "Course to edit")
    page.get_by_role("tab", name="Roster").click()
    idle(page)
    page.wait_for_timeout(1500)  # give any image a chance to load
    shot(page, "plain_text_courses")
    links = page.evaluate(f"() => [...document.querySelectorAll('a[href^=\"{beacon}\"], img[src^=\"{beacon}\"]')]"
                          ".map(e => e.outerHTML)")
    assert links == []
    assert Beacon.hits == []
