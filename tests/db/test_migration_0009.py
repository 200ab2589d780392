"""Migration 0009 (accounts and sign-in) on SQLite and the real MariaDB: accounts made before it keep
working, the new columns and ``user_sessions`` come and go, and the way back keeps the users."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from aas_core.db import init_db, session_scope
from aas_core.db.engine import downgrade_db, get_engine
from aas_core.db.models import User, UserSession, utcnow


def _columns(url: str, table: str) -> set[str]:
    return {c["name"] for c in inspect(get_engine(url)).get_columns(table)}


def test_accounts_before_0009_keep_working_and_survive_the_way_back(db_url: str) -> None:
    init_db(db_url)
    downgrade_db(db_url, "0006")
    assert "user_sessions" not in inspect(get_engine(db_url)).get_table_names()
    assert "must_change_password" not in _columns(db_url, "users")
    with get_engine(db_url).begin() as c:
        c.execute(text("INSERT INTO users (username, password_hash, role, is_active, created_at) "
                       "VALUES ('old', '$argon2id$x', 'admin', 1, '2026-01-01')"))
    init_db(db_url)
    assert {"email", "must_change_password", "oidc_issuer", "oidc_subject", "last_sign_in_at"} <= _columns(db_url, "users")
    with session_scope(db_url) as s:
        u = s.query(User).one()
        assert (u.username, u.must_change_password, u.email, u.oidc_subject) == ("old", False, None, None)
        now = utcnow()
        s.add(UserSession(user_id=u.id, token_hash="a" * 64, method="password", account_stamp="b" * 64,
                          created_at=now, last_seen_at=now, expires_at=now))
        u.email, u.oidc_issuer, u.oidc_subject = "old@uni.example", "http://idp", "sub-1"
    with pytest.raises(IntegrityError):  # one provider identity, one account
        with session_scope(db_url) as s:
            s.add(User(username="other", password_hash="x", role="admin", oidc_issuer="http://idp", oidc_subject="sub-1"))
    with pytest.raises(IntegrityError):  # one e-mail, one account
        with session_scope(db_url) as s:
            s.add(User(username="other2", password_hash="x", role="admin", email="old@uni.example"))
    with session_scope(db_url) as s:  # several accounts without e-mail or provider identity are fine
        s.add(User(username="a1", password_hash="x", role="admin"))
        s.add(User(username="a2", password_hash="x", role="admin"))
    with get_engine(db_url).begin() as c:  # deleting an account takes its sessions with it
        c.execute(text("DELETE FROM users WHERE username = 'a1'"))
    downgrade_db(db_url, "0006")  # the users survive the way back (plain DROP COLUMN)
    with get_engine(db_url).begin() as c:
        assert c.execute(text("SELECT COUNT(*) FROM users")).scalar() == 2
    assert "user_sessions" not in inspect(get_engine(db_url)).get_table_names()
    init_db(db_url)
    assert "user_sessions" in inspect(get_engine(db_url)).get_table_names()
