"""Browser tests: one Playwright driver and Chromium for the whole session (tests/browser/chromium.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import chromium


@pytest.fixture(scope="session", autouse=True)
def _shared_chromium() -> Iterator[None]:
    yield
    chromium.stop_all()
