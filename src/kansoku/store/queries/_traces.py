"""Stored spans: the newest and the slowest root spans, one trace's spans and its error events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, select, true

from kansoku.store.queries._common import Row, rows
from kansoku.store.tables import error_events, error_groups, spans
from kansoku.store.trace_search import LIST_COLUMNS, trace_row

_S = spans.c


def recent_roots(engine: Engine, limit: int = 50) -> list[Row]:
    """The newest root spans (one per trace and service), as trace search lists them (`trace_row`)."""
    return _traces(engine, select(*LIST_COLUMNS).where(_S.is_root == true()).order_by(_S.start_time.desc())
                   .limit(limit))


def slowest_roots(engine: Engine, since: float, limit: int = 50) -> list[Row]:
    """The slowest root spans that started after `since`, as trace search lists them (`trace_row`)."""
    return _traces(engine, select(*LIST_COLUMNS).where(_S.is_root == true(), _S.start_time >= since)
                   .order_by(_S.duration_ms.desc()).limit(limit))


def _traces(engine: Engine, statement: Select[Any]) -> list[Row]:
    with engine.connect() as conn:
        return [trace_row(row) for row in conn.execute(statement)]


def trace_spans(engine: Engine, trace_id: str, limit: int = 2000) -> list[Row]:
    """Every stored span of one trace, in start order."""
    return rows(engine, select(spans).where(_S.trace_id == trace_id).order_by(_S.start_time, _S.span_id).limit(limit))


def trace_errors(engine: Engine, trace_id: str, limit: int = 50) -> list[Row]:
    """Error events recorded in one trace, with their group's title."""
    e, g = error_events.c, error_groups.c
    return rows(engine, select(e.event_id, e.group_id, e.timestamp, e.severity, g.title)
                .join_from(error_events, error_groups, e.group_id == g.id)
                .where(e.trace_id == trace_id).order_by(e.timestamp).limit(limit))
