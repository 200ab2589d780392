"""Data layer: SQLAlchemy 2.0 typed ORM, Alembic migrations, engine/session helpers."""

from aas_core.db.engine import get_engine, init_db, make_engine, session_scope
from aas_core.db.models import Base

__all__ = ["Base", "get_engine", "init_db", "make_engine", "session_scope"]
