"""kansoku server: projects and their keys; the project (and links, resource) of ingested records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the projects and keys tables; add the project columns."""
    op.create_table(
        "kansoku_projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("rate_limit", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_projects"),
        sa.UniqueConstraint("name", name="uq_kansoku_projects_name"),
    )
    op.create_table(
        "kansoku_project_keys",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.PrimaryKeyConstraint("key", name="pk_kansoku_project_keys"),
        sa.ForeignKeyConstraint(["project_id"], ["kansoku_projects.id"], ondelete="CASCADE",
                                name="fk_kansoku_project_keys_project_id_kansoku_projects"),
    )
    op.create_index("ix_kansoku_project_keys_project_id", "kansoku_project_keys", ["project_id"])
    with op.batch_alter_table("kansoku_error_groups") as batch:
        batch.add_column(sa.Column("project", sa.String(128)))
    with op.batch_alter_table("kansoku_spans") as batch:
        batch.add_column(sa.Column("project", sa.String(128)))
        batch.add_column(sa.Column("links", sa.JSON))
        batch.add_column(sa.Column("resource", sa.JSON))


def downgrade() -> None:
    """Drop the project columns and tables."""
    with op.batch_alter_table("kansoku_spans") as batch:
        batch.drop_column("resource")
        batch.drop_column("links")
        batch.drop_column("project")
    with op.batch_alter_table("kansoku_error_groups") as batch:
        batch.drop_column("project")
    op.drop_index("ix_kansoku_project_keys_project_id", "kansoku_project_keys")
    op.drop_table("kansoku_project_keys")
    op.drop_table("kansoku_projects")
