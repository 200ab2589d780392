"""Fixtures of the trust tests: a populated school per database, the data dir, the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from trust_world import World, build_world

from aas_core.config import Settings
from aas_core.media.store import ImageStore


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """The (empty) data dir images are stored under in a test."""
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def store(data_root: Path) -> ImageStore:
    return ImageStore(data_root)


@pytest.fixture
def world(migrated: str, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """A populated school (see trust_world). Argon2 runs with light parameters here to keep the
    suite fast; test_accounts checks the real hasher."""
    from argon2 import PasswordHasher

    from aas_core.services import auth

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    return build_world(migrated, data_root)


@pytest.fixture
def settings(tmp_path: Path, models_dir: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", models_dir=models_dir, database_url="sqlite://")


@pytest.fixture(scope="session")
def fast_pipeline(models_dir: Path):  # type: ignore[no-untyped-def]
    """The 'fast' profile pipeline with its models loaded."""
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import resolve_profile

    p = Pipeline(resolve_profile("fast", models_dir)[0], models_dir)
    p.warm_up()
    return p
