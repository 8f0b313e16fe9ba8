"""The memory report: process memory, GC statistics and uncollectables, tracemalloc, tracked objects."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from kansoku import debug
from kansoku.debug import MemoryTracker

from .conftest import Clock, Lines


@pytest.fixture
def tracker(clock: Clock) -> Iterator[MemoryTracker]:
    """A started tracker on the test clock, stopped afterwards."""
    made = MemoryTracker(clock=clock)
    made.start()
    yield made
    made.stop()


def test_report_has_process_gc_tracemalloc_and_tracked_sections(tracker: MemoryTracker) -> None:
    """RSS, VMS and percent from psutil; GC counts, thresholds, stats; tracemalloc off by default."""
    report = tracker.report()
    assert set(report) == {"timestamp", "process", "gc", "tracemalloc", "tracked_objects"}
    process = report["process"]
    assert process["rss"] > 0 and process["vms"] >= process["rss"] and 0 < process["percent"] < 100
    gc_report = report["gc"]
    assert len(gc_report["counts"]) == 3 and len(gc_report["stats"]) == 3
    assert gc_report["thresholds"] == list(gc.get_threshold())
    if not tracemalloc.is_tracing():
        assert report["tracemalloc"] == {"tracing": False}
    assert report["tracked_objects"] == {"alive_count": 0, "alive": [], "finalized": []}


def test_collections_are_recorded_and_uncollectables_warned(tracker: MemoryTracker, log_lines: Lines) -> None:
    """Each collection is kept (bounded); a collection with uncollectable objects logs a warning."""
    gc.collect()
    recent = tracker.report()["gc"]["recent_collections"]
    assert recent and recent[-1]["generation"] == 2 and recent[-1]["duration_ms"] >= 0
    # CPython reports uncollectables only for C types with legacy finalizers, which pure Python cannot
    # make: feed the callback what the collector would pass.
    tracker._on_gc("start", {"generation": 2})
    tracker._on_gc("stop", {"generation": 2, "collected": 5, "uncollectable": 3})
    [line] = [line for line in log_lines() if line["event"] == "garbage collector found uncollectable objects"]
    assert (line["level"], line["uncollectable"], line["uncollectable_total"]) == ("warning", 3, 3)
    assert tracker.report()["gc"]["uncollectable_total"] == 3


def test_gc_garbage_is_summarised_by_type(tracker: MemoryTracker) -> None:
    """Objects kept in gc.garbage (DEBUG_SAVEALL) are counted by type in the report."""

    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.collect()
    old_flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        Node()
        gc.collect()
        garbage = tracker.report()["gc"]
        assert garbage["garbage_count"] >= 1
        assert garbage["garbage_types"]["test_gc_garbage_is_summarised_by_type.<locals>.Node"] == 1
    finally:
        gc.set_debug(old_flags)
        gc.garbage.clear()


def test_tracemalloc_top_allocations_and_diff_from_baseline(tracker: MemoryTracker) -> None:
    """With tracing on, the report lists top allocation sites and what grew since the baseline."""
    was_tracing = tracemalloc.is_tracing()
    tracker.start_tracemalloc()
    try:
        assert tracker.set_baseline()
        hoard = [bytearray(1024) for _ in range(2000)]  # about 2 MB from one line
        report = tracker.report()["tracemalloc"]
        assert report["tracing"] and report["current"] > 2_000_000 and report["peak"] >= report["current"]
        assert report["top"][0]["file"] == __file__
        grew = report["diff"][0]
        assert (grew["file"], grew["size_diff"] > 2_000_000, grew["count_diff"] >= 2000) == (__file__, True, True)
        del hoard
    finally:
        if not was_tracing:
            tracker.stop_tracemalloc()
    assert tracker.set_baseline() is was_tracing


def test_tracked_objects_report_age_and_lifetime(tracker: MemoryTracker, clock: Clock) -> None:
    """track_object follows an object by weak reference: alive with its age, then its lifetime."""

    class Cart:
        pass

    cart: Any = Cart()
    assert tracker.track_object(cart, "cart-17")
    assert not tracker.track_object(17, "an int")  # no weak references to ints
    clock.now += 2.5
    alive = tracker.report()["tracked_objects"]
    assert alive["alive_count"] == 1
    assert {k: alive["alive"][0][k] for k in ("name", "age_seconds")} == {"name": "cart-17", "age_seconds": 2.5}
    assert alive["alive"][0]["type"].endswith("Cart")
    clock.now += 1.5
    del cart
    tracked = tracker.report()["tracked_objects"]
    assert tracked["alive_count"] == 0
    [gone] = tracked["finalized"]
    assert (gone["name"], gone["lifetime_seconds"]) == ("cart-17", 4.0)
    tracker.clear_history()
    assert tracker.report()["tracked_objects"]["finalized"] == []


def test_module_track_object_uses_the_current_debugger(debugger: debug.Debugger) -> None:
    """kansoku.track_object goes to the runtime's debugger."""

    class Thing:
        pass

    thing = Thing()
    assert debug.track_object(thing, "thing")
    assert debugger.memory.report()["tracked_objects"]["alive"][0]["name"] == "thing"


def test_start_and_stop_are_idempotent(clock: Clock) -> None:
    """start() twice registers one callback; stop() removes it."""
    tracker = MemoryTracker(clock=clock)
    tracker.start()
    tracker.start()
    assert gc.callbacks.count(tracker._on_gc) == 1
    tracker.stop()
    tracker.stop()
    assert tracker._on_gc not in gc.callbacks
