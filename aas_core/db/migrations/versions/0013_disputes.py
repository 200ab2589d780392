"""disputes: a student contests their status in a session; an instructor resolves it

One new table; nothing existing changes.

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'disputes',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('session_id', sa.Integer(), sa.ForeignKey('sessions.id', ondelete='CASCADE'), nullable=False),
        sa.Column('student_id', sa.Integer(), sa.ForeignKey('students.id', ondelete='CASCADE'), nullable=False),
        sa.Column('message', sa.String(1000), nullable=False),
        sa.Column('status', sa.String(20), nullable=False),
        sa.Column('status_before', sa.String(20), nullable=False),
        sa.Column('status_after', sa.String(20), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('resolved_by', sa.String(80), nullable=True),
        sa.Column('resolved_at', sa.DateTime(), nullable=True),
        sa.Column('resolution', sa.String(500), nullable=True),
    )
    op.create_index('ix_disputes_session_id', 'disputes', ['session_id'])
    op.create_index('ix_disputes_student_id', 'disputes', ['student_id'])


def downgrade() -> None:
    op.drop_table('disputes')  # its indexes go with it
