"""rooms and cameras as data, course timetables, scheduled sessions

New tables: ``rooms``; ``cameras`` (a room's camera without secrets: kind, host, options);
``camera_health`` (last good grab / last error per camera name); ``missed_meetings``
(meetings the scheduler slept through, listed, never invented as sessions);
``scheduler_instances`` (each scheduler's last tick); ``capture_dispatches`` (a scheduled
snapshot handed to the capture work, once).

``courses`` gets ``timetable`` (JSON, a ``domain.timetable.Timetable``), ``sessions`` gets
``meeting_start`` with a UNIQUE index on (course_id, meeting_start): one session per
meeting, whoever opens it. A unique *index* rather than a constraint: SQLite can add an
index to an existing table without batch mode (which copies the table, see 0005).

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# Microseconds on MySQL (whose DATETIME keeps whole seconds): a good grab and an error in the same
# second must still be ordered.
PRECISE_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        'rooms',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rooms')),
        sa.UniqueConstraint('name', name=op.f('uq_rooms_name')),
    )
    op.create_table(
        'cameras',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('room_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('host', sa.String(length=300), nullable=True),
        sa.Column('options', sa.JSON(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_cameras_room_id_rooms'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cameras')),
        sa.UniqueConstraint('name', name=op.f('uq_cameras_name')),
        sa.UniqueConstraint('room_id', name=op.f('uq_cameras_room_id')),
    )
    op.create_table(
        'camera_health',
        sa.Column('camera', sa.String(length=100), nullable=False),
        sa.Column('last_ok_at', PRECISE_TIME, nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_error_at', PRECISE_TIME, nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('camera', name=op.f('pk_camera_health')),
    )
    op.create_table(
        'missed_meetings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('course_id', sa.Integer(), nullable=False),
        sa.Column('meeting_start', sa.DateTime(), nullable=False),
        sa.Column('meeting_end', sa.DateTime(), nullable=True),
        sa.Column('room', sa.String(length=100), nullable=True),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('noted_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_missed_meetings_course_id_courses'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_missed_meetings')),
        sa.UniqueConstraint('course_id', 'meeting_start', name='uq_missed_meetings_course_start'),
    )
    op.create_table(
        'scheduler_instances',
        sa.Column('instance', sa.String(length=64), nullable=False),
        sa.Column('host', sa.String(length=200), nullable=True),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('last_tick_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('instance', name=op.f('pk_scheduler_instances')),
    )
    op.create_index(op.f('ix_scheduler_instances_last_tick_at'), 'scheduler_instances', ['last_tick_at'])
    op.create_table(
        'capture_dispatches',
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('index', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('dispatched_at', sa.DateTime(), nullable=False),
        sa.Column('instance', sa.String(length=64), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_capture_dispatches_session_id_sessions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('session_id', 'index', name=op.f('pk_capture_dispatches')),
    )
    op.add_column('courses', sa.Column('timetable', sa.JSON(), nullable=True))
    op.add_column('sessions', sa.Column('meeting_start', sa.DateTime(), nullable=True))
    op.create_index('uq_sessions_course_meeting', 'sessions', ['course_id', 'meeting_start'], unique=True)


def downgrade() -> None:
    # SQLite refuses to drop an indexed column: the index goes first.
    op.drop_index('uq_sessions_course_meeting', table_name='sessions')
    op.drop_column('sessions', 'meeting_start')
    op.drop_column('courses', 'timetable')
    op.drop_table('capture_dispatches')
    op.drop_index(op.f('ix_scheduler_instances_last_tick_at'), table_name='scheduler_instances')
    op.drop_table('scheduler_instances')
    op.drop_table('missed_meetings')
    op.drop_table('camera_health')
    op.drop_table('cameras')
    op.drop_table('rooms')
