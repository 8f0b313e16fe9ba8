"""The project of an ingested log line (kansoku server's OTLP /v1/logs): `kansoku_logs.project`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

NULL for the app's own lines, as for groups and spans. Searched through the field tokens
(`project=shop`), like the other columns, so it needs no index of its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("kansoku_logs", sa.Column("project", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("kansoku_logs", "project")
