"""self check-in (windows, check-ins, attempts) and e-mail notices (opt-outs, what was sent)

New tables only: no existing row changes. ``checkin_windows`` holds a random nonce, never a
code secret (the secret is derived from AAS_SECRET_KEY and the nonce); ``check_ins`` are the
verified self check-ins the attendance decision reads as sightings; ``checkin_attempts`` bound
and explain every try; ``notice_optouts`` and ``notices_sent`` hold no address and no text.

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'checkin_windows',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('snapshot_index', sa.Integer(), nullable=False),
        sa.Column('opened_by', sa.String(length=80), nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.Column('closes_at', sa.DateTime(), nullable=False),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name='fk_checkin_windows_session_id_sessions',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_checkin_windows'),
    )
    op.create_index('ix_checkin_windows_session_id', 'checkin_windows', ['session_id'])
    op.create_table(
        'check_ins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('window_id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('student_id', sa.Integer(), nullable=False),
        sa.Column('snapshot_index', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('similarity', sa.Float(), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('model_name', sa.String(length=100), nullable=True),
        sa.Column('crop_path', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(['window_id'], ['checkin_windows.id'], name='fk_check_ins_window_id_checkin_windows',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name='fk_check_ins_session_id_sessions',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['student_id'], ['students.id'], name='fk_check_ins_student_id_students',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_check_ins'),
        sa.UniqueConstraint('session_id', 'student_id', 'snapshot_index', name='uq_check_ins_session_student_snapshot'),
    )
    op.create_index('ix_check_ins_window_id', 'check_ins', ['window_id'])
    op.create_index('ix_check_ins_session_id', 'check_ins', ['session_id'])
    op.create_index('ix_check_ins_student_id', 'check_ins', ['student_id'])
    op.create_table(
        'checkin_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('window_id', sa.Integer(), nullable=False),
        sa.Column('student_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('detail', sa.String(length=300), nullable=True),
        sa.Column('similarity', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['window_id'], ['checkin_windows.id'],
                                name='fk_checkin_attempts_window_id_checkin_windows', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['student_id'], ['students.id'], name='fk_checkin_attempts_student_id_students',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_checkin_attempts'),
    )
    op.create_index('ix_checkin_attempts_window_id', 'checkin_attempts', ['window_id'])
    op.create_index('ix_checkin_attempts_student_id', 'checkin_attempts', ['student_id'])
    op.create_table(
        'notice_optouts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('student_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['student_id'], ['students.id'], name='fk_notice_optouts_student_id_students',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_notice_optouts'),
        sa.UniqueConstraint('student_id', 'kind', name='uq_notice_optouts_student_kind'),
    )
    op.create_table(
        'notices_sent',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('course_id', sa.Integer(), nullable=False),
        sa.Column('student_id', sa.Integer(), nullable=True),
        sa.Column('sent_at', sa.DateTime(), nullable=False),
        sa.Column('rate', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name='fk_notices_sent_course_id_courses',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['student_id'], ['students.id'], name='fk_notices_sent_student_id_students',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_notices_sent'),
    )
    op.create_index('ix_notices_sent_course_id', 'notices_sent', ['course_id'])
    op.create_index('ix_notices_sent_student_id', 'notices_sent', ['student_id'])
    op.create_index('ix_notices_sent_sent_at', 'notices_sent', ['sent_at'])


def downgrade() -> None:
    op.drop_table('notices_sent')
    op.drop_table('notice_optouts')
    op.drop_table('checkin_attempts')
    op.drop_table('check_ins')
    op.drop_table('checkin_windows')
