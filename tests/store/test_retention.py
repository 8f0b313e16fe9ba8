"""Retention: events older than N days go, each group keeps its newest events, stale groups go."""

from __future__ import annotations

from sqlalchemy import Table, func, select

from kansoku.store import Store, queries
from kansoku.store.tables import error_buckets, error_events, error_groups
from kansoku.store.writer import EventWriter

from .conftest import T0, make_event

DAY = 86_400.0


def _count(store: Store, table: Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_enforce_retention(store: Store) -> None:
    """Old events and buckets are deleted, crowded groups trimmed, groups unseen since the cutoff deleted."""
    writer = EventWriter(store.engine, max_events_per_group=1000)
    writer.write([make_event(n, ts=T0 + n) for n in range(1, 11)])  # ten recent events of one group
    writer.write([make_event(100 + n, key="f" * 64, ts=T0 - 40 * DAY + n) for n in range(3)])  # a stale group
    result = queries.enforce_retention(store.engine, days=30, max_events_per_group=4, now=T0 + 100)
    assert result == {"events": 3, "trimmed": 6, "buckets": 1, "groups": 1, "logs": 0}
    group = queries.get_group(store.engine, make_event(1)["group_key"])
    assert group is not None and group["count"] == 10  # the count stays exact
    assert [e["event_id"] for e in group["events"]] == [f"{n:032x}" for n in range(10, 6, -1)]
    counts = [_count(store, table) for table in (error_groups, error_events, error_buckets)]
    assert counts == [1, 4, 1]


def test_writer_trims_crowded_groups_as_it_goes(store: Store) -> None:
    """The writer keeps at most max_events_per_group stored events per group (at most every interval)."""
    writer = EventWriter(store.engine, max_events_per_group=5, trim_interval=0.0)
    for batch in range(4):
        writer.write([make_event(batch * 10 + n) for n in range(1, 4)])
    group = queries.get_group(store.engine, make_event(1)["group_key"])
    assert group is not None and (group["count"], group["stored_events"]) == (12, 5)
