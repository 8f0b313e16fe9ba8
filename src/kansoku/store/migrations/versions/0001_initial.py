"""The initial schema: errors, spans, request statistics, alerting.

Revision ID: 0001
Revises:
Create Date: 2025-11-28

Written out in full rather than from `tables.metadata`, so that this revision keeps creating the
same schema when tables.py moves on (a later change is a later revision).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = (
    "kansoku_delivery_attempts", "kansoku_outbox", "kansoku_silences", "kansoku_alert_state",
    "kansoku_request_stats", "kansoku_spans", "kansoku_error_buckets", "kansoku_error_group_users",
    "kansoku_error_events", "kansoku_error_groups",
)


def _errors() -> None:
    op.create_table(
        "kansoku_error_groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("fingerprint_parts", sa.JSON, nullable=False),
        sa.Column("title", sa.String(512), nullable=False),
        sa.Column("culprit", sa.String(512), nullable=False),
        sa.Column("exception_type", sa.String(256), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("users_affected", sa.Integer, nullable=False),
        sa.Column("regressed", sa.Boolean, nullable=False),
        sa.Column("regressed_at", sa.Float),
        sa.Column("resolved_at", sa.Float),
        sa.Column("resolved_in_release", sa.String(128)),
        sa.Column("first_release", sa.String(128)),
        sa.Column("last_release", sa.String(128)),
        sa.Column("last_event_id", sa.String(32)),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_error_groups"),
        sa.UniqueConstraint("group_key", name="uq_kansoku_error_groups_group_key"),
    )
    op.create_index("ix_kansoku_error_groups_status_last_seen", "kansoku_error_groups",
                    ["status", "last_seen"])
    op.create_index("ix_kansoku_error_groups_last_seen", "kansoku_error_groups", ["last_seen"])
    op.create_index("ix_kansoku_error_groups_count", "kansoku_error_groups", ["count"])
    op.create_index("ix_kansoku_error_groups_first_seen", "kansoku_error_groups", ["first_seen"])

    op.create_table(
        "kansoku_error_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("release", sa.String(128)),
        sa.Column("user_id", sa.String(128)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_error_events"),
        sa.UniqueConstraint("event_id", name="uq_kansoku_error_events_event_id"),
        sa.ForeignKeyConstraint(["group_id"], ["kansoku_error_groups.id"], ondelete="CASCADE",
                                name="fk_kansoku_error_events_group_id_kansoku_error_groups"),
    )
    op.create_index("ix_kansoku_error_events_group_ts", "kansoku_error_events", ["group_id", "timestamp"])
    op.create_index("ix_kansoku_error_events_timestamp", "kansoku_error_events", ["timestamp"])
    op.create_index("ix_kansoku_error_events_trace_id", "kansoku_error_events", ["trace_id"])

    op.create_table(
        "kansoku_error_group_users",
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_kansoku_error_group_users"),
        sa.ForeignKeyConstraint(["group_id"], ["kansoku_error_groups.id"], ondelete="CASCADE",
                                name="fk_kansoku_error_group_users_group_id_kansoku_error_groups"),
    )
    op.create_table(
        "kansoku_error_buckets",
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("hour", sa.Integer, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("group_id", "hour", name="pk_kansoku_error_buckets"),
        sa.ForeignKeyConstraint(["group_id"], ["kansoku_error_groups.id"], ondelete="CASCADE",
                                name="fk_kansoku_error_buckets_group_id_kansoku_error_groups"),
    )
    op.create_index("ix_kansoku_error_buckets_hour", "kansoku_error_buckets", ["hour"])


def _traces_and_stats() -> None:
    op.create_table(
        "kansoku_spans",
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(16)),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("start_time", sa.Float, nullable=False),
        sa.Column("end_time", sa.Float, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("status_message", sa.Text),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("is_root", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("span_id", name="pk_kansoku_spans"),
    )
    op.create_index("ix_kansoku_spans_trace_id", "kansoku_spans", ["trace_id"])
    op.create_index("ix_kansoku_spans_root_start", "kansoku_spans", ["is_root", "start_time"])
    op.create_index("ix_kansoku_spans_root_duration", "kansoku_spans", ["is_root", "duration_ms"])

    op.create_table(
        "kansoku_request_stats",
        sa.Column("minute", sa.Integer, nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors_4xx", sa.Integer, nullable=False),
        sa.Column("errors_5xx", sa.Integer, nullable=False),
        sa.Column("duration_sum", sa.Float, nullable=False),
        sa.Column("buckets", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("minute", "service", "instance", name="pk_kansoku_request_stats"),
    )


def _alerting() -> None:
    op.create_table(
        "kansoku_alert_state",
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("last_sent", sa.Float, nullable=False),
        sa.Column("suppressed", sa.Integer, nullable=False),
        sa.Column("firing", sa.Boolean, nullable=False),
        sa.Column("last_outbox_id", sa.Integer),
        sa.PrimaryKeyConstraint("rule", "group_key", name="pk_kansoku_alert_state"),
    )
    op.create_table(
        "kansoku_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("locked_by", sa.String(64)),
        sa.Column("locked_until", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.Column("sent_at", sa.Float),
        sa.Column("provider_ref", sa.String(256)),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_outbox"),
        sa.UniqueConstraint("idempotency_key", name="uq_kansoku_outbox_idempotency_key"),
    )
    op.create_index("ix_kansoku_outbox_status_next", "kansoku_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_kansoku_outbox_created", "kansoku_outbox", ["created_at"])

    op.create_table(
        "kansoku_delivery_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_delivery_attempts"),
        sa.ForeignKeyConstraint(["outbox_id"], ["kansoku_outbox.id"], ondelete="CASCADE",
                                name="fk_kansoku_delivery_attempts_outbox_id_kansoku_outbox"),
    )
    op.create_index("ix_kansoku_delivery_attempts_outbox", "kansoku_delivery_attempts", ["outbox_id"])

    op.create_table(
        "kansoku_silences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("rule", sa.String(128)),
        sa.Column("group_key", sa.String(64)),
        sa.Column("tag", sa.String(256)),
        sa.Column("text", sa.String(256)),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kansoku_silences"),
    )
    op.create_index("ix_kansoku_silences_ends_at", "kansoku_silences", ["ends_at"])


def upgrade() -> None:
    """Create every kansoku table."""
    _errors()
    _traces_and_stats()
    _alerting()


def downgrade() -> None:
    """Drop every kansoku table (children first)."""
    for name in _TABLES:
        op.drop_table(name)
