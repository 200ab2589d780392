"""Every page renders without exceptions (streamlit.testing AppTest), on an empty database."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.name for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path) -> None:
    monkeypatch.setenv("AAS_DATABASE_URL", f"sqlite:///{tmp_path / 'ui.db'}")
    monkeypatch.setenv("AAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AAS_MODELS_DIR", str(models_dir))
    from aas_core.config import get_settings

    get_settings.cache_clear()
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()


def test_home_navigation_lists_every_page() -> None:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=60).run()
    assert not at.exception
    assert len(PAGES) == 7


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_empty_db(page: str) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.title, f"{page} shows no title"
