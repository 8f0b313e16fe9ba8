"""The dashboard's read queries (SQLAlchemy Core). Plain functions of an Engine, run in a thread pool.

Each one is shaped for one page section and bounded (a LIMIT, or a time window served by an
index), so that pages stay fast with a million events in the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine, Text, and_, func, or_, select, true, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from kansoku.store.tables import (
    delivery_attempts,
    error_buckets,
    error_events,
    error_groups,
    outbox,
    request_stats,
    silences,
    spans,
)

__all__ = [
    "SORTS",
    "STATUSES",
    "ErrorFilters",
    "Row",
    "count_by_status",
    "delivery_log",
    "event_neighbours",
    "filter_options",
    "get_event",
    "get_group",
    "group_id_for",
    "hourly_counts",
    "list_groups",
    "new_groups",
    "recent_notifications",
    "recent_roots",
    "regressed_groups",
    "request_rows",
    "silence_list",
    "slowest_roots",
    "stored_event_count",
    "tag_breakdown",
    "top_open_groups",
    "trace_errors",
    "trace_spans",
]

Row = dict[str, Any]
STATUSES = ("unresolved", "resolved", "ignored")
SORTS = {"last_seen": error_groups.c.last_seen, "count": error_groups.c.count,
         "first_seen": error_groups.c.first_seen}
_GROUP_LIST_COLUMNS = (
    error_groups.c.id, error_groups.c.title, error_groups.c.culprit, error_groups.c.severity,
    error_groups.c.category, error_groups.c.service, error_groups.c.environment, error_groups.c.status,
    error_groups.c.first_seen, error_groups.c.last_seen, error_groups.c.count,
    error_groups.c.users_affected, error_groups.c.regressed,
)


def _rows(engine: Engine, statement: Any) -> list[Row]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def _one(engine: Engine, statement: Any) -> Row | None:
    rows = _rows(engine, statement)
    return rows[0] if rows else None


# --- errors list ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorFilters:
    """The errors list's query string, validated: unknown values fall back to the defaults."""

    status: str = "unresolved"
    severity: str = ""
    category: str = ""
    service: str = ""
    environment: str = ""
    q: str = ""
    sort: str = "last_seen"
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> ErrorFilters:
        """Build from a query-string mapping (Starlette's QueryParams or a dict)."""
        status = str(params.get("status", "unresolved"))
        sort = str(params.get("sort", "last_seen"))
        try:
            page = max(1, min(int(params.get("page", 1)), 100_000))
        except ValueError:
            page = 1
        return cls(
            status=status if status in (*STATUSES, "") else "unresolved",
            severity=str(params.get("severity", ""))[:16],
            category=str(params.get("category", ""))[:32],
            service=str(params.get("service", ""))[:128],
            environment=str(params.get("environment", ""))[:64],
            q=str(params.get("q", "")).strip()[:200],
            sort=sort if sort in SORTS else "last_seen",
            page=page,
        )

    def query(self, **changes: Any) -> dict[str, str]:
        """The query-string items of these filters with `changes` applied (for links)."""
        new = replace(self, **changes)
        items = {"status": new.status}  # always: an empty status means "any", not the default
        for name in ("severity", "category", "service", "environment", "q"):
            if getattr(new, name):
                items[name] = getattr(new, name)
        if new.sort != "last_seen":
            items["sort"] = new.sort
        if new.page > 1:
            items["page"] = str(new.page)
        return items

    def where(self) -> ColumnElement[bool]:
        """The SQL condition selecting the matching groups."""
        g = error_groups.c
        conditions: list[ColumnElement[bool]] = []
        for column, value in ((g.status, self.status), (g.severity, self.severity),
                              (g.category, self.category), (g.service, self.service),
                              (g.environment, self.environment)):
            if value:
                conditions.append(column == value)
        if self.q:
            pattern = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(or_(
                g.title.ilike(pattern, escape="\\"), g.culprit.ilike(pattern, escape="\\"),
                g.message.ilike(pattern, escape="\\"), g.group_key == self.q, g.last_event_id == self.q,
            ))
        return and_(true(), *conditions)


def list_groups(engine: Engine, filters: ErrorFilters, page_size: int = 25) -> tuple[list[Row], int]:
    """One page of matching groups (sorted, newest first) and the number of matching groups."""
    where = filters.where()
    order = SORTS[filters.sort]
    statement = (select(*_GROUP_LIST_COLUMNS).where(where).order_by(order.desc(), error_groups.c.id.desc())
                 .limit(page_size).offset((filters.page - 1) * page_size))
    with engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(error_groups).where(where)).scalar_one())
        rows = [dict(row) for row in conn.execute(statement).mappings()]
    return rows, total


def filter_options(engine: Engine) -> dict[str, list[str]]:
    """The values present in the store for each list filter, for the filter drop-downs (one scan)."""
    g = error_groups.c
    names = ("severity", "category", "service", "environment")
    statement = select(g.severity, g.category, g.service, g.environment).distinct().limit(5000)
    found: dict[str, set[str]] = {name: set() for name in names}
    with engine.connect() as conn:
        for row in conn.execute(statement):
            for name, value in zip(names, row, strict=True):
                found[name].add(str(value))
    return {name: sorted(values)[:200] for name, values in found.items()}


# --- overview -------------------------------------------------------------------------------------


def count_by_status(engine: Engine) -> dict[str, int]:
    """Number of groups in each status."""
    statement = select(error_groups.c.status, func.count()).group_by(error_groups.c.status)
    with engine.connect() as conn:
        counts = {str(status): int(n) for status, n in conn.execute(statement)}
    return {status: counts.get(status, 0) for status in STATUSES}


def top_open_groups(engine: Engine, limit: int = 8) -> list[Row]:
    """Unresolved groups seen most recently."""
    return _rows(engine, select(*_GROUP_LIST_COLUMNS).where(error_groups.c.status == "unresolved")
                 .order_by(error_groups.c.last_seen.desc()).limit(limit))


def new_groups(engine: Engine, since: float, limit: int = 8) -> list[Row]:
    """Groups first seen after `since`, newest first."""
    return _rows(engine, select(*_GROUP_LIST_COLUMNS).where(error_groups.c.first_seen >= since)
                 .order_by(error_groups.c.first_seen.desc()).limit(limit))


def regressed_groups(engine: Engine, limit: int = 8) -> list[Row]:
    """Groups that came back after being resolved and are still open."""
    g = error_groups.c
    return _rows(engine, select(*_GROUP_LIST_COLUMNS, g.regressed_at)
                 .where(g.regressed == true(), g.status == "unresolved")
                 .order_by(g.regressed_at.desc()).limit(limit))


def recent_notifications(engine: Engine, limit: int = 8) -> list[Row]:
    """The newest outbox rows (alerts sent, pending or dead)."""
    o = outbox.c
    return _rows(engine, select(o.id, o.created_at, o.channel, o.rule, o.kind, o.status, o.attempts,
                                o.group_key, o.last_error).order_by(o.created_at.desc()).limit(limit))


def request_rows(engine: Engine, first_minute: int, last_minute: int) -> list[tuple[Any, ...]]:
    """Per-minute request statistics (all services and instances) in [first, last], as tuples
    (minute, requests, errors_4xx, errors_5xx, duration_sum, buckets). The buckets come back as the
    stored JSON text where the driver allows (parsed later, faster, by `series.request_points`)."""
    r = request_stats.c
    statement = select(r.minute, r.requests, r.errors_4xx, r.errors_5xx, r.duration_sum,
                       type_coerce(r.buckets, Text)).where(r.minute >= first_minute, r.minute <= last_minute)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(statement).all()]


def hourly_counts(engine: Engine, first_hour: int, last_hour: int, group_id: int | None = None) -> dict[int, int]:
    """Error occurrences per hour in [first, last], for one group or all of them."""
    b = error_buckets.c
    statement = (select(b.hour, func.sum(b.count)).where(b.hour >= first_hour, b.hour <= last_hour)
                 .group_by(b.hour))
    if group_id is not None:
        statement = statement.where(b.group_id == group_id)
    with engine.connect() as conn:
        return {int(hour): int(n or 0) for hour, n in conn.execute(statement)}


# --- error detail ---------------------------------------------------------------------------------


def group_id_for(engine: Engine, ident: str) -> int | None:
    """The group named by `ident`: a group id, an event id, or a group key."""
    if ident.isdigit() and len(ident) < 12:
        return int(ident)
    with engine.connect() as conn:
        found = conn.execute(select(error_events.c.group_id).where(error_events.c.event_id == ident)).scalar()
        if found is None:
            found = conn.execute(select(error_groups.c.id).where(error_groups.c.group_key == ident)).scalar()
    return None if found is None else int(found)


def get_group(engine: Engine, group_id: int) -> Row | None:
    """The whole group row."""
    return _one(engine, select(error_groups).where(error_groups.c.id == group_id))


def get_event(engine: Engine, group_id: int, event_id: str | None = None) -> Row | None:
    """One stored event of the group: `event_id`, or the latest."""
    e = error_events.c
    statement = select(e.id, e.event_id, e.timestamp, e.trace_id, e.data).where(e.group_id == group_id)
    if event_id:
        return _one(engine, statement.where(e.event_id == event_id))
    return _one(engine, statement.order_by(e.timestamp.desc(), e.id.desc()).limit(1))


def event_neighbours(engine: Engine, group_id: int, timestamp: float, row_id: int) -> tuple[str | None, str | None]:
    """Event ids of the previous (older) and next (newer) stored events of the group."""
    e = error_events.c
    older = or_(e.timestamp < timestamp, and_(e.timestamp == timestamp, e.id < row_id))
    newer = or_(e.timestamp > timestamp, and_(e.timestamp == timestamp, e.id > row_id))
    with engine.connect() as conn:
        previous = conn.execute(select(e.event_id).where(e.group_id == group_id, older)
                                .order_by(e.timestamp.desc(), e.id.desc()).limit(1)).scalar()
        following = conn.execute(select(e.event_id).where(e.group_id == group_id, newer)
                                 .order_by(e.timestamp.asc(), e.id.asc()).limit(1)).scalar()
    return previous, following


def stored_event_count(engine: Engine, group_id: int) -> int:
    """How many events of the group are kept in the store (the group count includes dropped ones)."""
    statement = select(func.count()).select_from(error_events).where(error_events.c.group_id == group_id)
    with engine.connect() as conn:
        return int(conn.execute(statement).scalar_one())


TagCounts = tuple[str, int, list[tuple[str, int]]]


def tag_breakdown(engine: Engine, group_id: int, sample: int = 100, top: int = 5) -> list[TagCounts]:
    """Tag values over the group's latest `sample` events: (key, events with it, top values)."""
    e = error_events.c
    statement = (select(e.data).where(e.group_id == group_id)
                 .order_by(e.timestamp.desc(), e.id.desc()).limit(sample))
    counters: dict[str, Counter[str]] = {}
    with engine.connect() as conn:
        for data in conn.execute(statement).scalars():
            if not isinstance(data, dict):
                continue
            tags = dict(data.get("tags") or {})
            for key in ("release", "environment", "host", "service"):
                if data.get(key):
                    tags.setdefault(key, data[key])
            for key, value in tags.items():
                counters.setdefault(str(key), Counter())[str(value)[:200]] += 1
    return [(key, sum(c.values()), c.most_common(top)) for key, c in sorted(counters.items())]


# --- traces ---------------------------------------------------------------------------------------

_SPAN_LIST = (spans.c.trace_id, spans.c.span_id, spans.c.name, spans.c.service, spans.c.start_time,
              spans.c.duration_ms, spans.c.status)


def recent_roots(engine: Engine, limit: int = 50) -> list[Row]:
    """The newest root spans (one per trace and service)."""
    return _rows(engine, select(*_SPAN_LIST).where(spans.c.is_root == true())
                 .order_by(spans.c.start_time.desc()).limit(limit))


def slowest_roots(engine: Engine, since: float, limit: int = 50) -> list[Row]:
    """The slowest root spans that started after `since`."""
    return _rows(engine, select(*_SPAN_LIST).where(spans.c.is_root == true(), spans.c.start_time >= since)
                 .order_by(spans.c.duration_ms.desc()).limit(limit))


def trace_spans(engine: Engine, trace_id: str, limit: int = 2000) -> list[Row]:
    """Every stored span of one trace, in start order."""
    return _rows(engine, select(spans).where(spans.c.trace_id == trace_id)
                 .order_by(spans.c.start_time, spans.c.span_id).limit(limit))


def trace_errors(engine: Engine, trace_id: str, limit: int = 50) -> list[Row]:
    """Error events recorded in one trace, with their group's title."""
    e, g = error_events.c, error_groups.c
    return _rows(engine, select(e.event_id, e.group_id, e.timestamp, e.severity, g.title)
                 .join_from(error_events, error_groups, e.group_id == g.id)
                 .where(e.trace_id == trace_id).order_by(e.timestamp).limit(limit))


# --- alerts ---------------------------------------------------------------------------------------


def silence_list(engine: Engine, now: float, expired_since: float, limit: int = 100) -> list[Row]:
    """Active silences and the ones that ended after `expired_since`, latest ending first."""
    s = silences.c
    return _rows(engine, select(silences).where(s.ends_at >= expired_since)
                 .order_by(s.ends_at.desc()).limit(limit))


def delivery_log(engine: Engine, status: str = "", limit: int = 50, offset: int = 0) -> list[Row]:
    """Outbox rows, newest first, with their number of recorded attempts."""
    o = outbox.c
    attempts = (select(func.count()).where(delivery_attempts.c.outbox_id == o.id)
                .scalar_subquery().label("recorded_attempts"))
    statement = select(o.id, o.created_at, o.channel, o.rule, o.group_key, o.kind, o.status, o.attempts,
                       o.next_attempt_at, o.last_error, o.sent_at, attempts)
    if status:
        statement = statement.where(o.status == status)
    return _rows(engine, statement.order_by(o.created_at.desc(), o.id.desc()).limit(limit).offset(offset))
