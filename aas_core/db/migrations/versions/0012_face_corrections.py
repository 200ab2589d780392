"""face corrections: "that face is not X", kept as negative examples for X

One new table; nothing existing changes. The negative's embedding is the observation's own
(referenced by ``observation_id``), so privacy erasure and the retention purge, which null
observation embeddings, reach the negatives too.

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'face_corrections',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('observation_id', sa.Integer(), sa.ForeignKey('face_observations.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('not_student_id', sa.Integer(), sa.ForeignKey('students.id', ondelete='CASCADE'), nullable=False),
        sa.Column('assigned_student_id', sa.Integer(), sa.ForeignKey('students.id', ondelete='SET NULL'),
                  nullable=True),
        sa.Column('created_by', sa.String(80), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('undone_by', sa.String(80), nullable=True),
        sa.Column('undone_at', sa.DateTime(), nullable=True),
    )
    op.create_index('ix_face_corrections_observation_id', 'face_corrections', ['observation_id'])
    op.create_index('ix_face_corrections_not_student_id', 'face_corrections', ['not_student_id'])


def downgrade() -> None:
    # The indexes go with the table (MariaDB refuses to drop one a foreign key needs first).
    op.drop_table('face_corrections')
