"""accounts and sign-in: e-mail and single sign-on link, forced password change, server-side sessions

``users`` gets ``email`` (unique; links a first OpenID Connect sign-in by *verified* e-mail),
``must_change_password`` (set by an administrator's reset), ``oidc_issuer`` + ``oidc_subject``
(unique together: the provider's identity once linked) and ``last_sign_in_at``. Existing accounts
keep working unchanged (no e-mail, no link, no forced change).

``user_sessions`` holds one row per signed-in browser: the SHA-256 of its cookie token (never
the token), idle and absolute expiry, revocation. Dropping it on downgrade signs everybody out,
which is what a downgrade to cookie-less sign-in means anyway.

Plain ADD/DROP COLUMN and CREATE/DROP TABLE, no batch mode (see 0005): except the unique
constraints on ``users``, which SQLite can only add by copying the table, so they are unique
*indexes* (the same guarantee on both databases).

Revision ID: 0009
Revises: 0007
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('email', sa.String(254), nullable=True))
    op.add_column('users', sa.Column('must_change_password', sa.Boolean(), nullable=False, server_default='0'))
    op.add_column('users', sa.Column('oidc_issuer', sa.String(255), nullable=True))
    op.add_column('users', sa.Column('oidc_subject', sa.String(255), nullable=True))
    op.add_column('users', sa.Column('last_sign_in_at', sa.DateTime(), nullable=True))
    op.create_index('uq_users_email', 'users', ['email'], unique=True)
    op.create_index('uq_users_oidc_identity', 'users', ['oidc_issuer', 'oidc_subject'], unique=True)
    op.create_table(
        'user_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(64), nullable=True),
        sa.Column('ticket_hash', sa.String(64), nullable=True),
        sa.Column('ticket_expires_at', sa.DateTime(), nullable=True),
        sa.Column('method', sa.String(20), nullable=False),
        sa.Column('account_stamp', sa.String(64), nullable=False),
        sa.Column('client', sa.String(64), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_reason', sa.String(40), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_user_sessions_user_id_users', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_user_sessions'),
        sa.UniqueConstraint('token_hash', name='uq_user_sessions_token_hash'),
        sa.UniqueConstraint('ticket_hash', name='uq_user_sessions_ticket_hash'),
    )
    op.create_index('ix_user_sessions_user_id', 'user_sessions', ['user_id'])


def downgrade() -> None:
    op.drop_table('user_sessions')  # its indexes with it (MariaDB refuses to drop the FK's index alone)
    # SQLite refuses to drop an indexed column: the indexes go first.
    op.drop_index('uq_users_oidc_identity', table_name='users')
    op.drop_index('uq_users_email', table_name='users')
    for col in ('last_sign_in_at', 'oidc_subject', 'oidc_issuer', 'must_change_password', 'email'):
        op.drop_column('users', col)
