"""Retention: the deletes the worker runs (old events, events over the per-group cap, stale groups)."""

from __future__ import annotations

import time
from typing import Any, Final

from sqlalchemy import Connection, Engine, delete, func, select

from kansoku.store import write_transaction
from kansoku.store.tables import error_buckets, error_events, error_group_users, error_groups

_G = error_groups.c
_E = error_events.c
_B = error_buckets.c
_CHUNK: Final = 5_000


def trim_group(conn: Connection, group_id: int, keep: int) -> int:
    """Delete a group's events beyond the `keep` most recent; the number deleted."""
    boundary = (select(_E.timestamp).where(_E.group_id == group_id)
                .order_by(_E.timestamp.desc()).limit(1).offset(keep - 1).scalar_subquery())
    result = conn.execute(delete(error_events).where(_E.group_id == group_id, _E.timestamp < boundary))
    return int(result.rowcount or 0)


def _delete_chunked(engine: Engine, table: Any, key: Any, condition: Any) -> int:
    """DELETE in chunks, so the write lock is never held for long."""
    deleted = 0
    while True:
        with write_transaction(engine) as conn:
            ids = select(key).where(condition).limit(_CHUNK).scalar_subquery()
            n = int(conn.execute(delete(table).where(key.in_(ids))).rowcount or 0)
        deleted += n
        if n < _CHUNK:
            return deleted


def enforce_retention(
    engine: Engine, *, days: int, max_events_per_group: int, now: float | None = None
) -> dict[str, int]:
    """Delete events older than `days`, events beyond the per-group cap, and groups not seen since."""
    if days < 1 or max_events_per_group < 1:
        raise ValueError("days and max_events_per_group must be at least 1")
    now = time.time() if now is None else now
    cutoff = now - days * 86_400.0
    events = _delete_chunked(engine, error_events, _E.id, _E.timestamp < cutoff)
    from kansoku.store.logs import prune_logs

    log_lines = prune_logs(engine, cutoff)
    with engine.connect() as conn:
        crowded = conn.execute(select(_E.group_id).group_by(_E.group_id)
                               .having(func.count() > max_events_per_group)).scalars().all()
    trimmed = 0
    for group_id in crowded:
        with write_transaction(engine) as conn:
            trimmed += trim_group(conn, int(group_id), max_events_per_group)
    with write_transaction(engine) as conn:  # a few rows per group and hour: one statement is enough
        buckets = int(conn.execute(delete(error_buckets).where(_B.hour < int(cutoff // 3600))).rowcount or 0)
    stale = _G.last_seen < cutoff
    stale_ids = select(_G.id).where(stale).scalar_subquery()
    with write_transaction(engine) as conn:  # children first: SQLite may run without foreign keys
        conn.execute(delete(error_group_users).where(error_group_users.c.group_id.in_(stale_ids)))
        conn.execute(delete(error_buckets).where(_B.group_id.in_(stale_ids)))
        conn.execute(delete(error_events).where(_E.group_id.in_(stale_ids)))
        groups = int(conn.execute(delete(error_groups).where(stale)).rowcount or 0)
    return {"events": events, "trimmed": trimmed, "buckets": buckets, "groups": groups, "logs": log_lines}
