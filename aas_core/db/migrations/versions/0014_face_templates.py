"""face templates: enrollment photos as the classroom camera sees them

One new table; nothing existing changes. Rows are derived from a face sample (cascade on
delete), recomputed when missing (``services.enrollment.ensure_embeddings``).

Revision ID: 0014
Revises: 0013
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'face_templates',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('sample_id', sa.Integer(), sa.ForeignKey('face_samples.id', ondelete='CASCADE'), nullable=False),
        sa.Column('views', sa.Integer(), nullable=False),
        sa.Column('embedding', sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), 'mysql', 'mariadb'), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
    )
    op.create_index('ix_face_templates_sample_id', 'face_templates', ['sample_id'], unique=True)


def downgrade() -> None:
    op.drop_table('face_templates')
