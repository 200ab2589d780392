"""Shared fixtures: real databases (SQLite file and the real MariaDB), real models and data.

MariaDB: ``AAS_TEST_MYSQL_URL`` (default ``mysql+pymysql://root@127.0.0.1:3306``). Every test
database is created as ``aas_test_<random>`` and dropped afterwards so runs never collide.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODELS_DIR = Path(os.environ.get("AAS_TEST_MODELS_DIR", os.environ.get("AAS_MODELS_DIR", SHARED / "models")))
DATA_DIR = Path(os.environ.get("AAS_TEST_DATA", SHARED / "data"))
MYSQL_SERVER_URL = os.environ.get("AAS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    if not MODELS_DIR.is_dir():
        pytest.fail(f"models dir {MODELS_DIR} not found: set AAS_TEST_MODELS_DIR")
    return MODELS_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"test data dir {DATA_DIR} not found: set AAS_TEST_DATA")
    return DATA_DIR


def _mysql_database() -> Iterator[str]:
    name = f"aas_test_{secrets.token_hex(4)}"
    server = create_engine(MYSQL_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as c:
            c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    except Exception as exc:  # the suite must say loudly that MySQL was not tested
        pytest.fail(f"MariaDB at {MYSQL_SERVER_URL} is not reachable: {exc}")
    url = f"{MYSQL_SERVER_URL}/{name}?charset=utf8mb4"
    try:
        yield url
    finally:
        from aas_core.db import engine as eng

        # get_engine is cached per URL: close its pool before dropping the database under it.
        eng.get_engine(url).dispose()
        eng.get_engine.cache_clear()
        eng._sessionmaker.cache_clear()
        with server.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL: a SQLite file, then a fresh database on the real MariaDB."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'aas.db'}"
    else:
        yield from _mysql_database()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    yield from _mysql_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'aas.db'}"


@pytest.fixture
def migrated(db_url: str) -> str:
    from aas_core.db import init_db

    init_db(db_url)
    return db_url
