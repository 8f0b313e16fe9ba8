"""Cron monitors: their definitions and state, and their check-ins.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create kansoku_monitors and kansoku_monitor_checkins."""
    op.create_table(
        "kansoku_monitors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("schedule_kind", sa.String(16), nullable=False),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("margin_seconds", sa.Float, nullable=False),
        sa.Column("max_runtime_seconds", sa.Float, nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("next_expected_at", sa.Float),
        sa.Column("last_checkin_at", sa.Float),
        sa.Column("alerting", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_monitors"),
        sa.UniqueConstraint("name", name="uq_kansoku_monitors_name"),
    )
    op.create_index("ix_kansoku_monitors_next_expected_at", "kansoku_monitors", ["next_expected_at"])
    op.create_table(
        "kansoku_monitor_checkins",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("monitor_id", sa.Integer, nullable=False),
        sa.Column("checkin_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("duration", sa.Float),
        sa.Column("expected_at", sa.Float),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("notified", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_monitor_checkins"),
        sa.UniqueConstraint("checkin_id", name="uq_kansoku_monitor_checkins_checkin_id"),
        sa.ForeignKeyConstraint(["monitor_id"], ["kansoku_monitors.id"], ondelete="CASCADE",
                                name="fk_kansoku_monitor_checkins_monitor_id_kansoku_monitors"),
    )
    op.create_index("ix_kansoku_monitor_checkins_monitor_started", "kansoku_monitor_checkins",
                    ["monitor_id", "started_at"])
    op.create_index("ix_kansoku_monitor_checkins_status", "kansoku_monitor_checkins", ["status"])


def downgrade() -> None:
    """Drop the monitor tables."""
    op.drop_table("kansoku_monitor_checkins")
    op.drop_table("kansoku_monitors")
