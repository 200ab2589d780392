"""What the browser tests share: Debian's Chromium under Playwright (never ``playwright install``),
waiting for Streamlit to settle, and signing in through the form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT = 120_000  # ms: model loading and pipeline runs on a small CPU


def launch() -> Iterator[Any]:
    """A Chromium for a module (use from a module-scoped fixture: ``yield from launch()``)."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


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
