"""The store's schema (SQLAlchemy Core). Alembic migrations under `migrations/` create it.

Times are float seconds since the epoch (UTC): compact, indexable, the same on SQLite and
PostgreSQL. Whole events and spans are kept as JSON beside the columns that queries filter on.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

__all__ = [
    "alert_state",
    "auth_secrets",
    "delivery_attempts",
    "error_buckets",
    "error_events",
    "error_group_users",
    "error_groups",
    "logs",
    "metadata",
    "monitor_checkins",
    "monitors",
    "outbox",
    "project_keys",
    "projects",
    "request_stats",
    "revoked_sessions",
    "silences",
    "spans",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# --- errors ---------------------------------------------------------------------------------------

error_groups = Table(
    "kansoku_error_groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_key", String(64), nullable=False, unique=True),  # hash of the fingerprint
    Column("fingerprint_parts", JSON, nullable=False),  # why grouped: the parts that made the key
    Column("title", String(512), nullable=False),  # "ValueError: amount over limit"
    Column("culprit", String(512), nullable=False, default=""),  # module.function of the top in-app frame
    Column("exception_type", String(256), nullable=False),
    Column("message", Text, nullable=False, default=""),  # of the first event (redacted)
    Column("severity", String(16), nullable=False),  # highest seen
    Column("category", String(32), nullable=False),
    Column("service", String(128), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("status", String(16), nullable=False, default="unresolved"),  # unresolved|resolved|ignored
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("count", BigInteger, nullable=False, default=0),
    Column("users_affected", Integer, nullable=False, default=0),
    Column("regressed", Boolean, nullable=False, default=False),
    Column("regressed_at", Float),
    Column("resolved_at", Float),
    Column("resolved_in_release", String(128)),
    Column("first_release", String(128)),
    Column("last_release", String(128)),
    Column("last_event_id", String(32)),
    Column("project", String(128)),  # the kansoku server project it was ingested into; NULL: native
    Index("ix_kansoku_error_groups_status_last_seen", "status", "last_seen"),
    Index("ix_kansoku_error_groups_last_seen", "last_seen"),
    Index("ix_kansoku_error_groups_count", "count"),
    Index("ix_kansoku_error_groups_first_seen", "first_seen"),
)

error_events = Table(
    "kansoku_error_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(32), nullable=False, unique=True),
    Column("group_id", Integer, ForeignKey("kansoku_error_groups.id", ondelete="CASCADE"), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("category", String(32), nullable=False),
    Column("release", String(128)),
    Column("user_id", String(128)),
    Column("request_id", String(128)),
    Column("trace_id", String(32)),
    Column("data", JSON, nullable=False),  # the whole ErrorEvent, redacted
    Index("ix_kansoku_error_events_group_ts", "group_id", "timestamp"),
    Index("ix_kansoku_error_events_timestamp", "timestamp"),
    Index("ix_kansoku_error_events_trace_id", "trace_id"),
)

error_group_users = Table(  # exact "users affected" without scanning events
    "kansoku_error_group_users",
    metadata,
    Column("group_id", Integer, ForeignKey("kansoku_error_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(128), primary_key=True),
)

error_buckets = Table(  # occurrences per group per hour: statistics and charts stay exact under retention
    "kansoku_error_buckets",
    metadata,
    Column("group_id", Integer, ForeignKey("kansoku_error_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", Integer, primary_key=True),  # floor(timestamp / 3600)
    Column("count", BigInteger, nullable=False, default=0),
    Index("ix_kansoku_error_buckets_hour", "hour"),
)

# --- traces ---------------------------------------------------------------------------------------

spans = Table(
    "kansoku_spans",
    metadata,
    Column("span_id", String(16), primary_key=True),
    Column("trace_id", String(32), nullable=False),
    Column("parent_id", String(16)),  # NULL for a root span (of this service)
    Column("name", String(256), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("service", String(128), nullable=False),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status", String(8), nullable=False, default="UNSET"),  # UNSET|OK|ERROR
    Column("status_message", Text),
    Column("attributes", JSON, nullable=False),
    Column("events", JSON, nullable=False),
    Column("is_root", Boolean, nullable=False, default=False),
    Column("project", String(128)),  # the kansoku server project it was ingested into; NULL: native
    Column("links", JSON),  # [{trace_id, span_id, attributes}] of an ingested span; NULL: none
    Column("resource", JSON),  # the sender's resource attributes (ingested spans)
    Index("ix_kansoku_spans_trace_id", "trace_id"),
    Index("ix_kansoku_spans_root_start", "is_root", "start_time"),
    Index("ix_kansoku_spans_root_duration", "is_root", "duration_ms"),
)

# --- kansoku server: projects and their ingest keys -----------------------------------------------

projects = Table(
    "kansoku_projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the DSN's project id
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("rate_limit", Integer),  # accepted events per minute and key; NULL: the server's default
)

project_keys = Table(  # a project's keys: the DSN's public key, the OTLP bearer token
    "kansoku_project_keys",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("project_id", Integer, ForeignKey("kansoku_projects.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),  # set by rotate-key: the key is refused (401) from then on
    Index("ix_kansoku_project_keys_project_id", "project_id"),
)

# --- logs -----------------------------------------------------------------------------------------

logs = Table(  # one row per stored log line; see store/logs.py for the search index of each backend
    "kansoku_logs",
    metadata,
    # INTEGER PRIMARY KEY on SQLite: the rowid itself, which the FTS5 index refers to
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("timestamp", Float, nullable=False),
    Column("level", SmallInteger, nullable=False),  # 5 trace, 10 debug, 20 info ... 50 critical
    Column("logger", String(256), nullable=False, default=""),
    Column("message", Text, nullable=False, default=""),  # the event (redacted)
    Column("service", String(128), nullable=False, default=""),
    Column("environment", String(64), nullable=False, default=""),
    Column("version", String(128)),
    Column("request_id", String(128)),
    Column("trace_id", String(32)),
    Column("span_id", String(16)),
    Column("attributes", JSON().with_variant(JSONB(), "postgresql"), nullable=False),  # every other field
    # The field tokens (store/logs.py); on PostgreSQL a tsvector of them and the message's words,
    # under a GIN index; on SQLite text, with FTS5 over blocks of rows (both made by the migration).
    Column("search", Text().with_variant(TSVECTOR(), "postgresql"), nullable=False, default=""),
    Column("project", String(128)),  # the kansoku server project it was ingested into; NULL: native
    Index("ix_kansoku_logs_timestamp", "timestamp"),
    Index("ix_kansoku_logs_level_id", "level", "id"),
)

# --- request statistics (dashboard overview without Prometheus) ------------------------------------

request_stats = Table(
    "kansoku_request_stats",
    metadata,
    Column("minute", Integer, primary_key=True),  # floor(timestamp / 60)
    Column("service", String(128), primary_key=True),
    Column("instance", String(64), primary_key=True),  # host:pid, so processes never collide
    Column("requests", Integer, nullable=False, default=0),
    Column("errors_4xx", Integer, nullable=False, default=0),
    Column("errors_5xx", Integer, nullable=False, default=0),
    Column("duration_sum", Float, nullable=False, default=0.0),
    Column("buckets", JSON, nullable=False),  # cumulative counts per latency bucket bound
)

# --- alerting -------------------------------------------------------------------------------------

alert_state = Table(  # suppression per rule and group, claimed atomically across processes
    "kansoku_alert_state",
    metadata,
    Column("rule", String(128), primary_key=True),
    Column("group_key", String(64), primary_key=True),  # "" for rules not tied to a group
    Column("last_sent", Float, nullable=False, default=0.0),
    Column("suppressed", Integer, nullable=False, default=0),  # events since last_sent
    Column("firing", Boolean, nullable=False, default=False),
    Column("last_outbox_id", Integer),
)

outbox = Table(
    "kansoku_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("channel", String(128), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("group_key", String(64), nullable=False, default=""),
    Column("kind", String(16), nullable=False),  # trigger|resolve|test
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("payload", JSON, nullable=False),  # the rendered, redacted notification
    Column("status", String(16), nullable=False, default="pending"),  # pending|sending|sent|dead|superseded
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("locked_by", String(64)),
    Column("locked_until", Float),
    Column("last_error", Text),
    Column("sent_at", Float),
    Column("provider_ref", String(256)),  # e.g. Slack message ts, for updates on resolve
    Index("ix_kansoku_outbox_status_next", "status", "next_attempt_at"),
    Index("ix_kansoku_outbox_created", "created_at"),
)

delivery_attempts = Table(
    "kansoku_delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, ForeignKey("kansoku_outbox.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False, default=0.0),
    Index("ix_kansoku_delivery_attempts_outbox", "outbox_id"),
)

silences = Table(
    "kansoku_silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("rule", String(128)),
    Column("group_key", String(64)),
    Column("tag", String(256)),  # "key=value"
    Column("text", String(256)),  # substring of the group's title
    Column("comment", Text, nullable=False, default=""),
    Column("created_by", String(128), nullable=False, default=""),
    Index("ix_kansoku_silences_ends_at", "ends_at"),
)

# The dashboard's sessions, shared by every worker and kept across restarts: a logged-out session
# id stays refused until the cookie would have expired anyway.
revoked_sessions = Table(
    "kansoku_revoked_sessions",
    metadata,
    Column("sid", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_kansoku_revoked_sessions_expires_at", "expires_at"),
)

# Random keys made once per store (the loopback mode's CSRF key): the same in every worker.
auth_secrets = Table(
    "kansoku_auth_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

# --- cron monitors ---------------------------------------------------------------------------------

monitors = Table(  # one row per monitor: its definition (from code, kansoku.toml or the CLI) and state
    "kansoku_monitors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("schedule_kind", String(16), nullable=False),  # crontab | interval
    Column("schedule", String(200), nullable=False),  # "0 3 * * *" or seconds
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("margin_seconds", Float, nullable=False),
    Column("max_runtime_seconds", Float, nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="new"),  # new | in_progress | ok | error | missed | timeout
    Column("next_expected_at", Float),  # the run due next; evaluators claim a missed run by this value
    Column("last_checkin_at", Float),
    Column("alerting", Boolean, nullable=False, default=False),  # a problem was notified: the next ok recovers
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_kansoku_monitors_next_expected_at", "next_expected_at"),
)

monitor_checkins = Table(  # each run: a check-in from the job, or a missed run recorded by the evaluator
    "kansoku_monitor_checkins",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("monitor_id", Integer, ForeignKey("kansoku_monitors.id", ondelete="CASCADE"), nullable=False),
    Column("checkin_id", String(32), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # in_progress | ok | error | missed | timeout
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("duration", Float),  # seconds
    Column("expected_at", Float),  # the scheduled time the run answered (missed runs)
    Column("source", String(16), nullable=False, default="code"),  # code | cli | http | evaluator
    Column("host", String(255), nullable=False, default=""),
    Column("notified", Boolean, nullable=False, default=False),  # a failure whose alert was claimed
    Index("ix_kansoku_monitor_checkins_monitor_started", "monitor_id", "started_at"),
    Index("ix_kansoku_monitor_checkins_status", "status"),
)
