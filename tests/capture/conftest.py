"""Fixtures: a real fake HTTP camera per test, and a virtual clock."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests import helpers with ``from fake_camera import ...``; make that work under any
# pytest import mode (prepend adds this folder itself, importlib does not).
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from fake_camera import FakeCamera, FakeClock  # noqa: E402


@pytest.fixture
def fake_camera() -> Iterator[FakeCamera]:
    """A started fake camera on 127.0.0.1 (no auth on IP Webcam endpoints)."""
    with FakeCamera() as cam:
        yield cam


@pytest.fixture
def fake_camera_auth() -> Iterator[FakeCamera]:
    """Same, with HTTP basic auth required on the IP Webcam endpoints."""
    with FakeCamera(basic_auth=True) as cam:
        yield cam


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
