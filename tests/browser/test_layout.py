"""Every page at 1400×900 and on a phone (390×844) in a real Chromium: nothing wider than the screen,
no Streamlit exception, a full-page screenshot of each (issue 13, "Done when").

One dashboard (``streamlit run app.py``) serves a school made in this process: an instructor, a
course of six students (one with a long name), two decided sessions and a student account. The
sessions are run with the seat-strip stand-in for vision (tests/services/fake_vision.py): this
test is about the pages' layout, not recognition. An administrator visits every page they may
open, then the student every page a student may open, once per viewport (one browser context
each; a typed URL keeps the sign-in cookie). Screenshots:
``test-artifacts/screenshots/layout/<viewport>_<role>_<page>.png``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.app_server import running_app
from tests.browser.chromium import SHOTS, WAIT, idle, launch, sign_in

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "layout-password-1"
OUT = SHOTS / "layout"
VIEWPORTS = {"1400": {"width": 1400, "height": 900}, "390": {"width": 390, "height": 844}}
# Each page file by URL path ("" = Home) and who may open it (as Home.PAGES lists them).
ADMIN_PAGES = ["", "courses", "rooms", "students", "live_session", "checkin", "follow_up", "inspector", "trends",
               "evaluation", "operations", "accounts"]
STUDENT_PAGES = ["", "students", "checkin", "my_sessions", "trends"]

#: What overflows: the document or Streamlit's main block wider than the window, and the widest
#: elements of the main block that reach past its right edge (named for the failure message).
OVERFLOW_JS = """() => {
  const w = window.innerWidth, main = document.querySelector('[data-testid="stMain"]');
  const out = [];
  if (main) {
    const edge = main.getBoundingClientRect().right + 1;
    for (const el of main.querySelectorAll('[data-testid]')) {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.right > edge) {
        // inside a box that scrolls sideways on purpose (tables, code) is fine
        let p = el.parentElement, scrolls = false;
        while (p && p !== main) {
          const ox = getComputedStyle(p).overflowX;
          if ((ox === 'auto' || ox === 'scroll' || ox === 'hidden') && p.getBoundingClientRect().right <= edge) {
            scrolls = true; break;
          }
          p = p.parentElement;
        }
        if (!scrolls) out.push(el.dataset.testid + ' ' + Math.round(r.right) + 'px');
      }
    }
  }
  return {doc: document.scrollingElement.scrollWidth, win: w, main: main ? main.scrollWidth : 0,
          mainClient: main ? main.clientWidth : 0, wide: out.slice(0, 8)};
}"""


def test_the_page_lists_cover_every_page_file() -> None:
    files = {p.stem for p in (ROOT / "pages").glob("*.py")}
    assert files == ({p or "home" for p in ADMIN_PAGES} | {p or "home" for p in STUDENT_PAGES})


def seed_school(url: str, data: Path, extra_students: int = 0) -> None:
    """An instructor ``teach``, course CS101 of six students with a face photo each (one with a long
    name) and ``extra_students`` more without photos, two decided sessions (attended, late, left
    early, absent and an unknown face), and a student account ``s2`` (also used by
    benchmarks/page_navigation.py)."""
    sys.path.insert(0, str(ROOT / "tests" / "services"))
    from fake_vision import FakePipeline, scene

    from aas_core.config import Settings
    from aas_core.db import repo, session_scope
    from aas_core.media.store import ImageStore
    from aas_core.services.auth import create_user, to_auth_user
    from aas_core.services.enrollment import enroll_images
    from aas_core.services.sessions import SessionService

    store, settings, pipe = ImageStore(data), Settings(database_url=url, data_dir=data), FakePipeline()
    names = ["Ada Lovelace", "Grace Hopper", "Maximiliana Wilhelmina von Hohenzollern-Sigmaringen",
             "Alan Turing", "Edsger Dijkstra", "Barbara Liskov"]
    with session_scope(url) as s:
        teach = to_auth_user(s, create_user(s, "teach", PASSWORD, "instructor", name="Dr Teach"))
        course = repo.add_course(s, "CS101", "Introduction to Computer Science", instructor_id=teach.instructor_id)
        for seat, name in enumerate(names):
            st = repo.add_student(s, f"S{seat + 1}", name, consent=True)
            repo.enroll_in_course(s, course, st)
            [o] = enroll_images(s, st, [(f"S{seat + 1}.png", scene({seat}))], pipe, store, settings)
            assert o.accepted
        for k in range(extra_students):
            repo.enroll_in_course(s, course, repo.add_student(s, f"X{k + 1:04d}", f"Extra Student {k + 1}"))
        create_user(s, "s2", PASSWORD, "student", student_number="S2")
    svc = SessionService(url, store, pipe, settings, seat_continuity=False)
    svc.run_from_images("CS101", [scene({0, 1, 2, 3, 4, 5}), scene({0, 1, 2, 3, 4}), scene({0, 1, 2, 3, 4})])
    # late, left early, absent and an unknown face (seat 7 has no student)
    svc.run_from_images("CS101", [scene({0, 2, 3, 7}), scene({0, 1, 2, 3, 7}), scene({0, 1, 2, 7})])


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("layout")
    with running_app(root, models_dir, PASSWORD, db_name="layout.db") as (base, env):
        seed_school(env["AAS_DATABASE_URL"], Path(env["AAS_DATA_DIR"]))
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


#: Placeholders Streamlit shows while an element's code is still loading in the browser.
LOADING = '[data-testid="stSkeleton"], [data-testid="stSkeletonElement"], [data-testid="stAppSkeleton"]'


def _visit(page: Any, base: str, path: str) -> None:
    page.goto(f"{base}/{path}")
    page.locator('[data-testid="stMain"] h1').first.wait_for()
    idle(page)
    page.wait_for_function(f"() => !document.querySelector('{LOADING}')", timeout=WAIT)
    page.wait_for_timeout(300)  # charts and tables size themselves after the run ends


def _overflows(page: Any) -> dict[str, Any] | None:
    """What reaches past the screen's right edge on this page (None when nothing does)."""
    m = page.evaluate(OVERFLOW_JS)
    return m if m["doc"] > m["win"] + 1 or m["main"] > m["mainClient"] + 1 or m["wide"] else None


def _check_the_check(page: Any) -> None:
    """The detector itself: a block twice the screen's width in the main area is reported."""
    page.evaluate("""() => { const d = document.createElement('div'); d.id = 'aas-too-wide';
        d.dataset.testid = 'tooWide'; d.style.width = (2 * innerWidth) + 'px'; d.style.height = '5px';
        document.querySelector('[data-testid="stMainBlockContainer"]').appendChild(d); }""")
    m = _overflows(page)
    page.evaluate("() => document.getElementById('aas-too-wide').remove()")
    assert m and any(w.startswith("tooWide") for w in m["wide"]), m
    assert _overflows(page) is None


def _screenshot(page: Any, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so the window is made as tall as it."""
    size = page.viewport_size
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
                           "[data-testid=\"stMainBlockContainer\"]')].map(e => e.scrollHeight), "
                           "document.body.scrollHeight)")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(8000, int(height) + 40))})
    page.wait_for_timeout(600)  # tables repaint after the resize
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_fits_the_screen(school: str, browser: Any, viewport: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    phone = viewport == "390"
    ctx = browser.new_context(viewport=VIEWPORTS[viewport], is_mobile=phone, has_touch=phone)
    problems: list[str] = []
    try:
        page = ctx.new_page()
        page.set_default_timeout(WAIT)
        for role, user, paths in (("admin", "admin", ADMIN_PAGES), ("student", "s2", STUDENT_PAGES)):
            ctx.clear_cookies()
            sign_in(page, school, user, PASSWORD)
            for path in paths:
                _visit(page, school, path)
                if path == "":  # the picture of a session's snapshots, folded once sessions exist
                    page.get_by_text("How a session works").click()
                    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
                    idle(page)
                name = f"{viewport}_{role}_{path or 'home'}"
                if role == "admin" and path == "":
                    _check_the_check(page)
                m = _overflows(page)
                if m:
                    problems.append(f"{name}: wider than the screen {m}")
                if page.locator('[data-testid="stException"]').count():
                    problems.append(f"{name}: exception {page.locator('[data-testid=stException]').first.inner_text()}")
                _screenshot(page, name)
    finally:
        ctx.close()
    assert not problems, "\n".join(problems)
