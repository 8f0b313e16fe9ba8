"""The dashboard's session revocations and per-store keys, shared by workers and kept across restarts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create kansoku_revoked_sessions and kansoku_auth_secrets."""
    op.create_table(
        "kansoku_revoked_sessions",
        sa.Column("sid", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_kansoku_revoked_sessions_expires_at", "kansoku_revoked_sessions", ["expires_at"])
    op.create_table(
        "kansoku_auth_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("kansoku_auth_secrets")
    op.drop_index("ix_kansoku_revoked_sessions_expires_at", table_name="kansoku_revoked_sessions")
    op.drop_table("kansoku_revoked_sessions")
