"""Counts over time: the chapter's error statistics, errors per hour, requests per minute."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, Text, func, select, type_coerce

from kansoku.store.tables import error_buckets, error_groups, request_stats

_G = error_groups.c
_B = error_buckets.c


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


def hourly_counts(engine: Engine, first_hour: int, last_hour: int, group_id: int | None = None) -> dict[int, int]:
    """Error occurrences per hour in [first, last], for one group or all of them."""
    statement = (select(_B.hour, func.sum(_B.count)).where(_B.hour >= first_hour, _B.hour <= last_hour)
                 .group_by(_B.hour))
    if group_id is not None:
        statement = statement.where(_B.group_id == group_id)
    with engine.connect() as conn:
        return {int(hour): int(n or 0) for hour, n in conn.execute(statement)}


def request_rows(engine: Engine, first_minute: int, last_minute: int) -> list[tuple[Any, ...]]:
    """Per-minute request statistics (all services and instances) in [first, last], as tuples
    (minute, requests, errors_4xx, errors_5xx, duration_sum, buckets). The buckets come back as the
    stored JSON text where the driver allows (parsed later, faster, by the dashboard's series)."""
    r = request_stats.c
    statement = select(r.minute, r.requests, r.errors_4xx, r.errors_5xx, r.duration_sum,
                       type_coerce(r.buckets, Text)).where(r.minute >= first_minute, r.minute <= last_minute)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(statement).all()]


def first_request_minute(engine: Engine, since_minute: int) -> int | None:
    """The first minute with request statistics at or after `since_minute` (None: no requests since)."""
    r = request_stats.c
    with engine.connect() as conn:
        found = conn.execute(select(func.min(r.minute)).where(r.minute >= since_minute)).scalar()
    return None if found is None else int(found)
