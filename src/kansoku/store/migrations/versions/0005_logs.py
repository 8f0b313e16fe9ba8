"""The log store: `kansoku_logs` and its search index (SQLite FTS5, PostgreSQL tsvector + GIN).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

SQLite: an FTS5 table with one document per block of rows (store/logs.py says why); PostgreSQL:
`search` is a tsvector (the message's words and the field tokens) under a GIN index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# One FTS5 document per block of consecutive rows (the writer makes them): a block's messages and
# the union of its rows' field tokens in one column. detail=none: no positions, no column filters
# (the index only finds candidate blocks; each row is then checked exactly).
_SQLITE_FTS = ("CREATE VIRTUAL TABLE kansoku_logs_fts USING fts5(body, last_id UNINDEXED, "
               "columnsize=0, detail=none, tokenize='unicode61 remove_diacritics 0')")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "kansoku_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("logger", sa.String(256), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("version", sa.String(128)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("span_id", sa.String(16)),
        sa.Column("attributes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("search", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_logs"),
    )
    op.create_index("ix_kansoku_logs_timestamp", "kansoku_logs", ["timestamp"])
    op.create_index("ix_kansoku_logs_level_id", "kansoku_logs", ["level", "id"])
    if postgres:
        op.create_index("ix_kansoku_logs_search", "kansoku_logs", ["search"], postgresql_using="gin")
    else:
        op.execute(_SQLITE_FTS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS kansoku_logs_fts")
    op.drop_table("kansoku_logs")
