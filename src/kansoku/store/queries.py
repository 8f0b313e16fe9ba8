"""Reads and state changes of error groups, statistics and retention, in SQL (both dialects).

Every function takes an Engine (or a Connection) and returns plain JSON-ready data, so the API,
the dashboard and the CLI share them. Bad arguments raise `ValueError` with the reason.
"""

from __future__ import annotations

import time
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Connection, Engine, Row, and_, delete, func, or_, select, update

from kansoku.store import write_transaction
from kansoku.store.tables import error_buckets, error_events, error_group_users, error_groups

__all__ = [
    "CATEGORIES",
    "SEVERITIES",
    "SORTS",
    "STATUSES",
    "enforce_retention",
    "find_group_id",
    "get_group",
    "list_groups",
    "set_status",
    "statistics",
    "trim_group",
]

STATUSES: Final = ("unresolved", "resolved", "ignored")
SEVERITIES: Final = ("low", "medium", "high", "critical", "emergency")
CATEGORIES: Final = ("application", "system", "database", "network", "security", "performance",
                     "business_logic", "external_api")
SORTS: Final = ("last_seen", "count", "first_seen")
MAX_LIMIT: Final = 200
_CHUNK: Final = 5_000

_G = error_groups.c
_E = error_events.c
_B = error_buckets.c

_LIST_COLUMNS: Final = (
    _G.id, _G.group_key, _G.title, _G.culprit, _G.exception_type, _G.severity, _G.category, _G.service,
    _G.environment, _G.status, _G.first_seen, _G.last_seen, _G.count, _G.users_affected, _G.regressed,
    _G.regressed_at, _G.resolved_at, _G.resolved_in_release, _G.first_release, _G.last_release,
    _G.last_event_id, _G.fingerprint_parts, _G.project,
)


def _row(row: Row[Any, *tuple[Any, ...]]) -> dict[str, Any]:
    data = dict(row._mapping)
    if "regressed" in data:
        data["regressed"] = bool(data["regressed"])
    return data


def _choices(name: str, value: str | None, allowed: tuple[str, ...]) -> list[str]:
    """A comma-separated filter value, every item checked against `allowed`."""
    if value is None or value == "":
        return []
    items = [item.strip() for item in value.split(",") if item.strip()]
    wrong = [item for item in items if item not in allowed]
    if wrong:
        raise ValueError(f"{name}={wrong[0]!r} is not one of {', '.join(allowed)}")
    return items


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def list_groups(
    engine: Engine,
    *,
    status: str | None = None,
    severity: str | None = None,
    category: str | None = None,
    service: str | None = None,
    environment: str | None = None,
    text: str | None = None,
    sort: str = "last_seen",
    order: Literal["asc", "desc"] = "desc",
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Groups matching the filters (status/severity/category accept comma-separated lists).

    Returns `{"items": [...], "total": n, "limit": .., "offset": ..}`.
    """
    if sort not in SORTS:
        raise ValueError(f"sort={sort!r} is not one of {', '.join(SORTS)}")
    if order not in ("asc", "desc"):
        raise ValueError(f"order={order!r} is not one of asc, desc")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit={limit} must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise ValueError(f"offset={offset} must not be negative")
    where: list[ColumnElement[bool]] = []
    for column, values in ((_G.status, _choices("status", status, STATUSES)),
                           (_G.severity, _choices("severity", severity, SEVERITIES)),
                           (_G.category, _choices("category", category, CATEGORIES))):
        if values:
            where.append(column.in_(values))
    if service:
        where.append(_G.service == service)
    if environment:
        where.append(_G.environment == environment)
    if text:
        pattern = _like(text)
        columns = (_G.title, _G.culprit, _G.message)
        where.append(or_(*(func.lower(c).like(pattern, escape="\\") for c in columns)))
    condition = and_(*where) if where else None
    key = getattr(_G, sort)
    ordering = (key.asc(), _G.id.asc()) if order == "asc" else (key.desc(), _G.id.desc())
    items = select(*_LIST_COLUMNS).order_by(*ordering).limit(limit).offset(offset)
    total = select(func.count()).select_from(error_groups)
    if condition is not None:
        items, total = items.where(condition), total.where(condition)
    with engine.connect() as conn:
        rows = [_row(r) for r in conn.execute(items)]
        count = int(conn.execute(total).scalar_one())
    return {"items": rows, "total": count, "limit": limit, "offset": offset}


def find_group_id(conn: Connection, ident: str | int) -> int | None:
    """The group behind `ident`: a group id, an event id, or a group key."""
    text = str(ident).strip()
    if text.isdigit() and len(text) < 16:
        found = conn.execute(select(_G.id).where(_G.id == int(text))).scalar()
        if found is not None:
            return int(found)
    found = conn.execute(select(_E.group_id).where(_E.event_id == text)).scalar()
    if found is None:
        found = conn.execute(select(_G.id).where(_G.group_key == text)).scalar()
    return int(found) if found is not None else None


def get_group(engine: Engine, ident: str | int, *, events: int = 20) -> dict[str, Any] | None:
    """One group (by group id, event id or group key) with its most recent events, or None."""
    if not 0 <= events <= MAX_LIMIT:
        raise ValueError(f"events={events} must be between 0 and {MAX_LIMIT}")
    with engine.connect() as conn:
        group_id = find_group_id(conn, ident)
        if group_id is None:
            return None
        row = conn.execute(select(error_groups).where(_G.id == group_id)).one()
        recent = conn.execute(select(_E.data).where(_E.group_id == group_id)
                              .order_by(_E.timestamp.desc(), _E.id.desc()).limit(events)).scalars().all()
        stored = conn.execute(select(func.count()).where(_E.group_id == group_id)).scalar_one()
    group = _row(row)
    group["events"] = list(recent)
    group["stored_events"] = int(stored)
    return group


def set_status(
    engine: Engine,
    ident: str | int,
    status: str,
    *,
    release: str | None = None,
    now: float | None = None,
) -> dict[str, Any] | None:
    """Resolve (optionally in a release), ignore or reopen a group; the updated group or None.

    Resolving clears the regression mark; a later event (or one from a release newer than
    `release`) reopens the group as a regression.
    """
    if status not in STATUSES:
        raise ValueError(f"status={status!r} is not one of {', '.join(STATUSES)}")
    if release is not None and (not release.strip() or len(release) > 128):
        raise ValueError("release must be 1 to 128 characters")
    now = time.time() if now is None else now
    values: dict[str, Any] = {"status": status}
    if status == "resolved":
        values.update(resolved_at=now, resolved_in_release=release, regressed=False)
    elif status == "unresolved":
        values.update(resolved_at=None, resolved_in_release=None, regressed=False)
    with write_transaction(engine) as conn:
        group_id = find_group_id(conn, ident)
        if group_id is None:
            return None
        conn.execute(update(error_groups).where(_G.id == group_id).values(**values))
        row = conn.execute(select(*_LIST_COLUMNS).where(_G.id == group_id)).one()
    return _row(row)


def statistics(engine: Engine, *, hours: int = 24, now: float | None = None, top: int = 10) -> dict[str, Any]:
    """The chapter's `get_error_statistics`, in SQL over the hourly buckets (exact under retention).

    The window is the last `hours` hours counting the current one, so it starts at the top of
    an hour. Category and severity are the group's (severity: the highest seen).
    """
    if not 1 <= hours <= 24 * 366:
        raise ValueError(f"hours={hours} must be between 1 and {24 * 366}")
    now = time.time() if now is None else now
    first_hour = int(now // 3600) - hours + 1
    in_window = _B.hour >= first_hour
    joined = error_buckets.join(error_groups, _B.group_id == _G.id)
    with engine.connect() as conn:
        total, unique = conn.execute(
            select(func.coalesce(func.sum(_B.count), 0), func.count(func.distinct(_B.group_id)))
            .where(in_window)
        ).one()
        by_category = conn.execute(select(_G.category, func.sum(_B.count)).select_from(joined)
                                   .where(in_window).group_by(_G.category)).all()
        by_severity = conn.execute(select(_G.severity, func.sum(_B.count)).select_from(joined)
                                   .where(in_window).group_by(_G.severity)).all()
        window_count = func.sum(_B.count).label("window_count")
        frequent = conn.execute(
            select(_G.id, _G.group_key, _G.title, _G.message, _G.severity, _G.category, _G.status,
                   _G.count.label("total_count"), window_count)
            .select_from(joined).where(in_window).group_by(_G.id)
            .order_by(window_count.desc(), _G.id).limit(top)
        ).all()
    return {
        "total_errors": int(total),
        "unique_errors": int(unique),
        "category_breakdown": {name: int(n) for name, n in by_category},
        "severity_breakdown": {name: int(n) for name, n in by_severity},
        "time_period_hours": hours,
        "since": first_hour * 3600.0,
        "most_frequent_errors": [
            {"id": r.id, "fingerprint": r.group_key, "title": r.title, "message": (r.message or "")[:100],
             "severity": r.severity, "category": r.category, "status": r.status,
             "count": int(r.window_count), "total_count": int(r.total_count)}
            for r in frequent
        ],
    }


# --- retention ------------------------------------------------------------------------------------


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
    return {"events": events, "trimmed": trimmed, "buckets": buckets, "groups": groups}
