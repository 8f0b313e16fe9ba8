"""Stored spans: the newest and the slowest root spans, one trace's spans and its error events."""

from __future__ import annotations

from sqlalchemy import Engine, select, true

from kansoku.store.queries._common import Row, rows
from kansoku.store.tables import error_events, error_groups, spans

_S = spans.c
_SPAN_LIST = (_S.trace_id, _S.span_id, _S.name, _S.service, _S.start_time, _S.duration_ms, _S.status)


def recent_roots(engine: Engine, limit: int = 50) -> list[Row]:
    """The newest root spans (one per trace and service)."""
    return rows(engine, select(*_SPAN_LIST).where(_S.is_root == true()).order_by(_S.start_time.desc()).limit(limit))


def slowest_roots(engine: Engine, since: float, limit: int = 50) -> list[Row]:
    """The slowest root spans that started after `since`."""
    return rows(engine, select(*_SPAN_LIST).where(_S.is_root == true(), _S.start_time >= since)
                .order_by(_S.duration_ms.desc()).limit(limit))


def trace_spans(engine: Engine, trace_id: str, limit: int = 2000) -> list[Row]:
    """Every stored span of one trace, in start order."""
    return rows(engine, select(spans).where(_S.trace_id == trace_id).order_by(_S.start_time, _S.span_id).limit(limit))


def trace_errors(engine: Engine, trace_id: str, limit: int = 50) -> list[Row]:
    """Error events recorded in one trace, with their group's title."""
    e, g = error_events.c, error_groups.c
    return rows(engine, select(e.event_id, e.group_id, e.timestamp, e.severity, g.title)
                .join_from(error_events, error_groups, e.group_id == g.id)
                .where(e.trace_id == trace_id).order_by(e.timestamp).limit(limit))
