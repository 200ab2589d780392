"""face quality per observation, review reasons per attendance record

``face_observations`` gets ``quality`` (how identifiable the face is, in [0, 1]) and
``quality_figures`` (its components and measurements, JSON); ``attendance_records`` gets
``review_reasons`` (why a person should look at the record, JSON list). All nullable: rows
stored before stay as they were (no quality = never "too poor to identify").

Columns rather than keys inside an existing JSON column: ``top_matches`` is a list the review
and corrections read as ``[[student, similarity], ...]``, and ``presence`` is read by reports
as true/false/null per snapshot; new keys there would change what every reader sees.

Plain ADD/DROP COLUMN, no batch mode (see 0005: batch mode copies the table on SQLite).

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('face_observations', sa.Column('quality', sa.Float(), nullable=True))
    op.add_column('face_observations', sa.Column('quality_figures', sa.JSON(), nullable=True))
    op.add_column('attendance_records', sa.Column('review_reasons', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('attendance_records', 'review_reasons')
    op.drop_column('face_observations', 'quality_figures')
    op.drop_column('face_observations', 'quality')
