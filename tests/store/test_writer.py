"""EventWriter: groups, counts, severity, users, buckets and regressions, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from kansoku.store import Store, queries
from kansoku.store.tables import error_buckets, error_events
from kansoku.store.writer import EventWriter, release_newer

from .conftest import KEY, T0, make_event


def test_batch_creates_one_group_with_exact_aggregates(store: Store) -> None:
    """A batch of one group: count, first/last seen, highest severity, users, hourly buckets, changes."""
    writer = EventWriter(store.engine)
    events = [make_event(1, user={"id": "u1"}), make_event(2, severity="high", user={"id": "u2"}),
              make_event(3, ts=T0 + 3600, user={"id": "u1"}, release="1.2")]
    changes = writer.write(events)
    base = {"group_key": KEY, "group_id": 1, "regression": False, "status": "unresolved"}
    assert changes == [{**base, "new": True, "count": 1}, {**base, "new": False, "count": 2},
                       {**base, "new": False, "count": 3}]
    group = queries.get_group(store.engine, KEY)
    assert group is not None
    names = ("count", "first_seen", "last_seen", "severity", "users_affected", "status", "last_event_id",
             "last_release", "title", "culprit", "stored_events")
    picked = {k: group[k] for k in names}
    assert picked == {"count": 3, "first_seen": T0 + 1, "last_seen": T0 + 3600, "severity": "high",
                      "users_affected": 2, "status": "unresolved", "last_event_id": f"{3:032x}",
                      "last_release": "1.2", "title": "ValueError: amount over limit", "culprit": "app.pay",
                      "stored_events": 3}
    with store.engine.connect() as conn:
        buckets = dict(conn.execute(select(error_buckets.c.hour, error_buckets.c.count)).all())
    assert buckets == {int((T0 + 1) // 3600): 2, int((T0 + 3600) // 3600): 1}


def test_later_batches_add_to_the_group_and_never_lower_severity(store: Store) -> None:
    """count = count + n across batches; severity stays the highest seen; a new group is new once."""
    writer = EventWriter(store.engine)
    writer.write([make_event(1, severity="critical")])
    changes = writer.write([make_event(2), make_event(3)])
    assert [c["count"] for c in changes] == [2, 3] and not any(c["new"] for c in changes)
    group = queries.get_group(store.engine, KEY)
    assert group is not None and group["count"] == 3 and group["severity"] == "critical"


def test_events_of_several_groups_in_one_batch(store: Store) -> None:
    """Each event is counted in its own group; changes come back in the batch's order."""
    writer = EventWriter(store.engine)
    other = "b" * 64
    changes = writer.write([make_event(1), make_event(2, key=other), make_event(3)])
    assert [(c["group_key"] == KEY, c["count"], c["new"]) for c in changes] == [
        (True, 1, True), (False, 1, True), (True, 2, False)]


def test_long_values_are_cut_to_the_columns(store: Store) -> None:
    """Strings longer than their column are shortened, so PostgreSQL never rejects a batch."""
    writer = EventWriter(store.engine)
    writer.write([make_event(1, title="T" * 2000, culprit="c" * 2000, release="r" * 300,
                             request_id="x" * 300)])
    group = queries.get_group(store.engine, KEY)
    assert group is not None and len(group["title"]) == 512 and len(group["culprit"]) == 512
    with store.engine.connect() as conn:
        assert conn.execute(select(func.length(error_events.c.request_id))).scalar() == 128


def test_release_comparison() -> None:
    """Versions compare by number, pre-releases before finals; other releases differ or not."""
    assert release_newer("1.10", "1.9")
    assert release_newer("app@2.0.0", "app@1.5")
    assert release_newer("1.0", "1.0rc1")
    assert not release_newer("1.0.0", "1.0")
    assert not release_newer("1.0", "1.1")
    assert release_newer("9fceb02", "a1b2c3d") and not release_newer("a1b2c3d", "a1b2c3d")
