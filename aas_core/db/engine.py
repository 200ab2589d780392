"""Engine, sessions and schema management (Alembic ``upgrade head`` is the only way in)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from aas_core.db import limits as _limits  # noqa: F401  registers the length check on every flush

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")  # SQLite ignores FKs (and ON DELETE CASCADE) without this
    cur.execute("PRAGMA journal_mode=WAL")  # the UI reads while a session runner writes
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _json_dumps(value: object) -> str:
    # Real Unicode, not "\\u00fc" escapes: a JSON value holding a non-ASCII student id must
    # read the same as the id itself (erasure, search, anyone auditing the database).
    return json.dumps(value, ensure_ascii=False)


def make_engine(url: str) -> Engine:
    """Create an engine for SQLite or MySQL/MariaDB with settings that make both behave."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"check_same_thread": False, "timeout": 30},
                               json_serializer=_json_dumps)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if u.get_backend_name() in ("mysql", "mariadb"):
        q = dict(u.query)
        q.setdefault("charset", "utf8mb4")
        # pool_pre_ping + recycle: survive a MariaDB restart or wait_timeout between requests.
        return create_engine(u.set(query=q), pool_pre_ping=True, pool_recycle=1800, json_serializer=_json_dumps)
    return create_engine(u, pool_pre_ping=True, json_serializer=_json_dumps)


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL per process (the UI wraps this in st.cache_resource)."""
    return make_engine(url)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be escaped for ConfigParser; the URL (with password) never goes to a log.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def init_db(url: str) -> None:
    """Create or upgrade the schema to the newest migration. Idempotent."""
    engine = get_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def downgrade_db(url: str, revision: str = "base") -> None:
    engine = get_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


@lru_cache(maxsize=8)
def _sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any error (nothing half-written)."""
    session = _sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
