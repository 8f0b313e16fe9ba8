"""Regression: a resolved group that comes back is reopened and flagged (must-show)."""

from __future__ import annotations

import itertools
from typing import Any

from kansoku.errors import ErrorTracker
from kansoku.settings import load_settings
from kansoku.store import Store, queries
from kansoku.typing import ErrorChange

from .conftest import T0


def _tracker(store: Store, version: str | None, clock: Any, changes: list[ErrorChange]) -> ErrorTracker:
    ids = itertools.count(1 if version is None else int(version.replace(".", "")) * 1000)
    tracker = ErrorTracker(load_settings(service_name="shop", version=version), store.engine, clock=clock,
                           new_id=lambda: f"{next(ids):032x}")
    tracker.add_listener(lambda event, change: changes.append(change))
    return tracker


def _fail() -> ValueError:
    try:
        raise ValueError("payment declined")
    except ValueError as exc:
        return exc


def _state(store: Store, key: str) -> tuple[str, bool, int]:
    group = queries.get_group(store.engine, key)
    assert group is not None
    return group["status"], group["regressed"], group["count"]


def test_resolved_group_reopens_on_the_same_error_again(store: Store) -> None:
    """Resolve; the same error again reopens the group, flags it, and tells the listeners."""
    now = [T0]
    changes: list[ErrorChange] = []
    tracker = _tracker(store, None, lambda: now[0], changes)
    first = tracker.capture(_fail())
    assert tracker.flush(10)
    queries.set_status(store.engine, first, "resolved", now=T0 + 10)
    assert _state(store, first) == ("resolved", False, 1)
    now[0] = T0 + 20
    tracker.capture(_fail())
    assert tracker.close(10)
    assert _state(store, first) == ("unresolved", True, 2)
    assert [(c["regression"], c["status"]) for c in changes] == [(False, "unresolved"), (True, "unresolved")]
    group = queries.get_group(store.engine, first)
    assert group is not None and group["regressed_at"] == T0 + 20 and group["resolved_at"] is None


def test_resolved_in_a_release_reopens_only_for_a_newer_release(store: Store) -> None:
    """Resolved in 1.1: events from 1.0 and 1.1 (old code still running) count; 1.2 reopens it."""
    now = [T0]
    changes: list[ErrorChange] = []
    trackers = {v: _tracker(store, v, lambda: now[0], changes) for v in ("1.0", "1.1", "1.2")}
    key = trackers["1.0"].capture(_fail())
    assert trackers["1.0"].flush(10)
    queries.set_status(store.engine, key, "resolved", release="1.1", now=T0 + 10)
    now[0] = T0 + 20
    for version in ("1.0", "1.1"):
        trackers[version].capture(_fail())
        assert trackers[version].flush(10)
    assert _state(store, key) == ("resolved", False, 3)
    trackers["1.2"].capture(_fail())
    assert trackers["1.2"].flush(10)
    assert _state(store, key) == ("unresolved", True, 4)
    assert [c["regression"] for c in changes] == [False, False, False, True]
    for tracker in trackers.values():
        tracker.close(10)


def test_event_captured_before_the_resolution_does_not_reopen(store: Store) -> None:
    """An event from before the resolve click, written after it, is counted but reopens nothing."""
    from kansoku.store.writer import EventWriter

    from .conftest import make_event

    writer = EventWriter(store.engine)
    writer.write([make_event(1)])
    queries.set_status(store.engine, make_event(1)["group_key"], "resolved", now=T0 + 100)
    changes = writer.write([make_event(2, ts=T0 + 50)])
    assert changes[0]["regression"] is False and changes[0]["status"] == "resolved"


def test_ignored_group_stays_ignored_and_counts(store: Store) -> None:
    """Events of an ignored group are counted; the group is not reopened."""
    from kansoku.store.writer import EventWriter

    from .conftest import make_event

    writer = EventWriter(store.engine)
    writer.write([make_event(1)])
    queries.set_status(store.engine, f"{1:032x}", "ignored")
    writer.write([make_event(2, ts=T0 + 1e6)])
    assert _state(store, f"{1:032x}") == ("ignored", False, 2)


def test_reopen_clears_resolution(store: Store) -> None:
    """Reopen by event id: unresolved, not regressed, resolution fields cleared."""
    from kansoku.store.writer import EventWriter

    from .conftest import make_event

    EventWriter(store.engine).write([make_event(1)])
    queries.set_status(store.engine, 1, "resolved", release="2.0", now=T0)
    group = queries.set_status(store.engine, f"{1:032x}", "unresolved")
    assert group is not None
    assert (group["status"], group["resolved_at"], group["resolved_in_release"]) == ("unresolved", None, None)
    assert queries.set_status(store.engine, "nope", "resolved") is None
