"""What the browser tests share: Debian's Chromium under Playwright (never ``playwright install``),
waiting for Streamlit to settle, and signing in through the form.

One Playwright driver and one Chromium serve the whole test session (launching them costs seconds
per module); every module still gets its own browser contexts (cookies, storage) and closes them.
A Chromium with other command-line switches (the fake camera) is launched once per switch set.
``tests/browser/conftest.py`` stops them at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT = 120_000  # ms: model loading and pipeline runs on a small CPU

_driver: Any = None  # the session's Playwright (sync API: one per process at a time)
_browsers: dict[tuple[str, ...], Any] = {}


def shared_browser(extra_args: Sequence[str] = ()) -> Any:
    """The session's Chromium started with ``CHROMIUM_ARGS`` plus ``extra_args`` (launched on first use)."""
    global _driver
    key = tuple(extra_args)
    b = _browsers.get(key)
    if b is not None and b.is_connected():
        return b
    if _driver is None:
        from playwright.sync_api import sync_playwright

        _driver = sync_playwright().start()
    SHOTS.mkdir(parents=True, exist_ok=True)
    b = _browsers[key] = _driver.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
    return b


def stop_all() -> None:
    """Close every shared Chromium and the Playwright driver (the end of the session)."""
    global _driver
    for b in _browsers.values():
        try:
            b.close()
        except Exception:  # noqa: BLE001 - already gone (crashed or closed): nothing to release
            pass
    _browsers.clear()
    if _driver is not None:
        _driver.stop()
        _driver = None


def launch(extra_args: Sequence[str] = ()) -> Iterator[Any]:
    """A Chromium for a module (use from a module-scoped fixture: ``yield from launch()``).

    It is the session's shared Chromium: close the contexts you open, not the browser."""
    yield shared_browser(extra_args)


def idle(page: Any) -> None:
    """Wait until Streamlit has finished the current run."""
    page.wait_for_timeout(400)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.match(/Running|Stop/)",
        timeout=WAIT)


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    """Open ``url`` and sign in with the form (the sidebar then names the user; collapsed on a phone)."""
    page.goto(url)
    page.get_by_text("AAS — sign in").wait_for()
    page.get_by_role("textbox", name="Username", exact=True).fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for(state="attached")
    idle(page)
