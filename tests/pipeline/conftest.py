"""Synthetic classrooms shared by the pipeline/session tests (built once per test run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aas_core.tools.synthetic import SyntheticSession, make_session, scrfd_locator


@pytest.fixture(scope="session")
def faces_dev(data_dir: Path) -> Path:
    return data_dir / "faces_dev"


@pytest.fixture(scope="session")
def classroom(models_dir: Path, faces_dev: Path) -> SyntheticSession:
    """30 students (known attended/late/left-early/absent mix) + 3 strangers, faces 36-100 px."""
    return make_session(faces_dev, scrfd_locator(models_dir), n_students=30, n_strangers=3, seed=1)
