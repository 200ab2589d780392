"""archived courses, the signed consent form behind a student's consent

``courses`` gets ``archived_at`` (NULL = active): an archived course keeps every session and
record but is hidden from the pickers where new work starts (Live Session, Inspector, new
students). ``students`` gets ``consent_reference`` (the reference of the signed consent form,
e.g. "form 2026-014", recorded with bulk consent from a CSV); ``consent_given_at`` already holds
the date. Both nullable: rows stored before stay as they were.

Plain ADD/DROP COLUMN, no batch mode (see 0005: batch mode copies the table on SQLite).

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('courses', sa.Column('archived_at', sa.DateTime(), nullable=True))
    op.add_column('students', sa.Column('consent_reference', sa.String(length=120), nullable=True))


def downgrade() -> None:
    op.drop_column('students', 'consent_reference')
    op.drop_column('courses', 'archived_at')
