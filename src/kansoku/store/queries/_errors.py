"""Error groups: the filtered list, the one id resolver, one group, status changes, overview lists."""

from __future__ import annotations

import time
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select, true, update

from kansoku.store import write_transaction
from kansoku.store.queries._common import (
    CATEGORIES,
    LIST_COLUMNS,
    MAX_LIMIT,
    SEVERITIES,
    SORTS,
    STATUSES,
    Row,
    as_row,
    rows,
)
from kansoku.store.tables import error_events, error_groups

_G = error_groups.c
_E = error_events.c
_MAX_GROUP_ID_DIGITS = 15


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


def _text_matches(text: str) -> ColumnElement[bool]:
    """Title, culprit or message contain `text`, or `text` is the group key or one of its event ids."""
    pattern = _like(text)
    contains = [func.lower(c).like(pattern, escape="\\") for c in (_G.title, _G.culprit, _G.message)]
    named = [_G.group_key == text, _G.id.in_(select(_E.group_id).where(_E.event_id == text))]
    return or_(*contains, *named)


def _where(status: str | None, severity: str | None, category: str | None, service: str | None,
           environment: str | None, text: str | None) -> ColumnElement[bool]:
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
        where.append(_text_matches(text))
    return and_(true(), *where)


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

    `text` matches inside the title, culprit or message, or names the group by key or event id.
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
    condition = _where(status, severity, category, service, environment, text)
    key = getattr(_G, sort)
    ordering = (key.asc(), _G.id.asc()) if order == "asc" else (key.desc(), _G.id.desc())
    items = select(*LIST_COLUMNS).where(condition).order_by(*ordering).limit(limit).offset(offset)
    total = select(func.count()).select_from(error_groups).where(condition)
    with engine.connect() as conn:
        found = [as_row(r) for r in conn.execute(items).mappings()]
        count = int(conn.execute(total).scalar_one())
    return {"items": found, "total": count, "limit": limit, "offset": offset}


def filter_options(engine: Engine) -> dict[str, list[str]]:
    """The values present in the store for each list filter, for the filter drop-downs (one scan)."""
    names = ("severity", "category", "service", "environment")
    statement = select(_G.severity, _G.category, _G.service, _G.environment).distinct().limit(5000)
    found: dict[str, set[str]] = {name: set() for name in names}
    with engine.connect() as conn:
        for row in conn.execute(statement):
            for name, value in zip(names, row, strict=True):
                found[name].add(str(value))
    return {name: sorted(values)[:200] for name, values in found.items()}


def find_group_id(conn: Connection, ident: str | int) -> int | None:
    """The group behind `ident`, the one rule every reader uses.

    A number (ASCII digits, at most 15) that is a group's id names that group; anything else (or a
    number no group has) is tried as an event id, then as a group key.
    """
    text = str(ident).strip()
    if text.isascii() and text.isdigit() and len(text) <= _MAX_GROUP_ID_DIGITS:
        found = conn.execute(select(_G.id).where(_G.id == int(text))).scalar()
        if found is not None:
            return int(found)
    found = conn.execute(select(_E.group_id).where(_E.event_id == text)).scalar()
    if found is None:
        found = conn.execute(select(_G.id).where(_G.group_key == text)).scalar()
    return int(found) if found is not None else None


def get_group(engine: Engine, ident: str | int, *, events: int = 20) -> dict[str, Any] | None:
    """One group (by group id, event id or group key) with its most recent events, or None.

    `stored_events` is how many of its events the store keeps (`count` includes dropped ones).
    """
    if not 0 <= events <= MAX_LIMIT:
        raise ValueError(f"events={events} must be between 0 and {MAX_LIMIT}")
    with engine.connect() as conn:
        group_id = find_group_id(conn, ident)
        if group_id is None:
            return None
        row = conn.execute(select(error_groups).where(_G.id == group_id)).mappings().one()
        recent = conn.execute(select(_E.data).where(_E.group_id == group_id)
                              .order_by(_E.timestamp.desc(), _E.id.desc()).limit(events)).scalars().all()
        stored = conn.execute(select(func.count()).where(_E.group_id == group_id)).scalar_one()
    group = as_row(row)
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
        row = conn.execute(select(*LIST_COLUMNS).where(_G.id == group_id)).mappings().one()
    return as_row(row)


# --- the overview's lists -------------------------------------------------------------------------


def count_by_status(engine: Engine) -> dict[str, int]:
    """Number of groups in each status."""
    with engine.connect() as conn:
        counts = {str(status): int(n) for status, n in conn.execute(
            select(_G.status, func.count()).group_by(_G.status))}
    return {status: counts.get(status, 0) for status in STATUSES}


def top_open_groups(engine: Engine, limit: int = 8) -> list[Row]:
    """Unresolved groups seen most recently."""
    return rows(engine, select(*LIST_COLUMNS).where(_G.status == "unresolved")
                .order_by(_G.last_seen.desc()).limit(limit))


def new_groups(engine: Engine, since: float, limit: int = 8) -> list[Row]:
    """Groups first seen after `since`, newest first."""
    return rows(engine, select(*LIST_COLUMNS).where(_G.first_seen >= since)
                .order_by(_G.first_seen.desc()).limit(limit))


def regressed_groups(engine: Engine, limit: int = 8) -> list[Row]:
    """Groups that came back after being resolved and are still open."""
    return rows(engine, select(*LIST_COLUMNS).where(_G.regressed == true(), _G.status == "unresolved")
                .order_by(_G.regressed_at.desc()).limit(limit))
