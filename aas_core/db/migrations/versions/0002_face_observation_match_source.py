"""face observation match source

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 05:58:26.353630
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('face_observations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('match_source', sa.String(length=20), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('face_observations', schema=None) as batch_op:
        batch_op.drop_column('match_source')

