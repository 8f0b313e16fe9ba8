"""One group's stored events: one of them, its neighbours, the tags over the latest ones."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Engine, and_, or_, select

from kansoku.store.queries._common import Row, one
from kansoku.store.tables import error_events

_E = error_events.c

TagCounts = tuple[str, int, list[tuple[str, int]]]


def get_event(engine: Engine, group_id: int, event_id: str | None = None) -> Row | None:
    """One stored event of the group: `event_id`, or the latest."""
    statement = select(_E.id, _E.event_id, _E.timestamp, _E.trace_id, _E.data).where(_E.group_id == group_id)
    if event_id:
        return one(engine, statement.where(_E.event_id == event_id))
    return one(engine, statement.order_by(_E.timestamp.desc(), _E.id.desc()).limit(1))


def event_neighbours(engine: Engine, group_id: int, timestamp: float, row_id: int) -> tuple[str | None, str | None]:
    """Event ids of the previous (older) and next (newer) stored events of the group."""
    older = or_(_E.timestamp < timestamp, and_(_E.timestamp == timestamp, _E.id < row_id))
    newer = or_(_E.timestamp > timestamp, and_(_E.timestamp == timestamp, _E.id > row_id))
    with engine.connect() as conn:
        previous = conn.execute(select(_E.event_id).where(_E.group_id == group_id, older)
                                .order_by(_E.timestamp.desc(), _E.id.desc()).limit(1)).scalar()
        following = conn.execute(select(_E.event_id).where(_E.group_id == group_id, newer)
                                 .order_by(_E.timestamp.asc(), _E.id.asc()).limit(1)).scalar()
    return previous, following


def tag_breakdown(engine: Engine, group_id: int, sample: int = 100, top: int = 5) -> list[TagCounts]:
    """Tag values over the group's latest `sample` events: (key, events with it, top values)."""
    statement = (select(_E.data).where(_E.group_id == group_id)
                 .order_by(_E.timestamp.desc(), _E.id.desc()).limit(sample))
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
