"""Reads for the service map: the services seen in spans and error groups, and who calls whom.

An edge is a span whose parent span belongs to another service (a cross-service parent link:
an OTLP sender calling a kansoku service, or two ingested services). Both reads cover the spans
that started after `since`, and return plain JSON-ready dicts, sorted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, case, func, select

from kansoku.store.tables import error_groups, spans

__all__ = ["service_edges", "service_summary"]


def service_summary(engine: Engine, since: float) -> list[dict[str, Any]]:
    """Per service: spans, failed spans, last span, project, and its unresolved error groups."""
    s, g = spans.c, error_groups.c
    failed = func.sum(case((s.status == "ERROR", 1), else_=0))
    span_rows = select(s.service, func.max(s.project).label("project"), func.count().label("spans"),
                       failed.label("failed"), func.max(s.end_time).label("last_seen")) \
        .where(s.start_time >= since).group_by(s.service)
    group_rows = select(g.service, func.count().label("open_groups")).where(g.status == "unresolved") \
        .group_by(g.service)
    with engine.connect() as conn:
        found: dict[str, dict[str, Any]] = {
            r.service: {"service": r.service, "project": r.project, "spans": int(r.spans),
                        "failed": int(r.failed or 0), "last_seen": r.last_seen, "open_groups": 0}
            for r in conn.execute(span_rows)}
        for r in conn.execute(group_rows):
            found.setdefault(r.service, {"service": r.service, "project": None, "spans": 0, "failed": 0,
                                         "last_seen": None, "open_groups": 0})["open_groups"] = int(r.open_groups)
    return sorted(found.values(), key=lambda row: row["service"])


def service_edges(engine: Engine, since: float, limit: int = 200) -> list[dict[str, Any]]:
    """Caller -> callee pairs from cross-service parent links: calls, failed calls, mean duration."""
    child, parent = spans.alias("child"), spans.alias("parent")
    c, p = child.c, parent.c
    statement = (
        select(p.service.label("caller"), c.service.label("callee"), func.count().label("calls"),
               func.sum(case((c.status == "ERROR", 1), else_=0)).label("failed"),
               func.avg(c.duration_ms).label("mean_ms"))
        .join_from(child, parent, c.parent_id == p.span_id)
        .where(c.start_time >= since, c.service != p.service)
        .group_by(p.service, c.service).order_by(func.count().desc()).limit(limit)
    )
    with engine.connect() as conn:
        return [{"caller": r.caller, "callee": r.callee, "calls": int(r.calls), "failed": int(r.failed or 0),
                 "mean_ms": float(r.mean_ms or 0.0)} for r in conn.execute(statement)]
