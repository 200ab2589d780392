"""face sample review status, content and perceptual hashes, who added it

``face_samples`` gets ``status`` (accepted | pending | rejected; only accepted samples are
used for recognition, mirrored in the existing ``accepted`` flag), ``content_sha256`` and
``phash`` (duplicate detection at enrollment) and ``added_by`` (role of who added it).
Existing rows become ``accepted`` (``rejected`` where ``accepted`` was false, which
enrollment never stored, to keep the two columns in step); their hashes stay NULL (the
migration has no access to the image files).

Plain ADD/DROP COLUMN, no batch mode: on SQLite batch mode copies the table and drops the
old one, and the 0004 docstring explains how such a DROP cascades through foreign keys.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

samples = sa.table("face_samples", sa.column("accepted", sa.Boolean), sa.column("status", sa.String))


def upgrade() -> None:
    status = sa.Enum('accepted', 'pending', 'rejected', name='sample_status', native_enum=False, length=20)
    op.add_column('face_samples', sa.Column('status', status, nullable=False, server_default='accepted'))
    op.add_column('face_samples', sa.Column('content_sha256', sa.String(64), nullable=True))
    op.add_column('face_samples', sa.Column('phash', sa.String(64), nullable=True))
    op.add_column('face_samples', sa.Column('added_by', sa.String(20), nullable=True))
    op.create_index('ix_face_samples_content_sha256', 'face_samples', ['content_sha256'])
    op.get_bind().execute(samples.update().where(samples.c.accepted.is_(False)).values(status='rejected'))


def downgrade() -> None:
    # SQLite refuses to drop an indexed column: the index goes first.
    op.drop_index('ix_face_samples_content_sha256', table_name='face_samples')
    for col in ('added_by', 'phash', 'content_sha256', 'status'):
        op.drop_column('face_samples', col)
