"""The performance summary: per-function figures, bounded names, fed by traced and by record()."""

from __future__ import annotations

import math
import random

import pytest

from kansoku import debug
from kansoku.debug import PerformanceStats
from kansoku.tracing import traced


def test_summary_has_exact_counts_and_sketched_percentiles() -> None:
    """count/min/max/mean/total are exact; p50/p95/p99 within the stated error of the exact ones."""
    stats = PerformanceStats()
    rng = random.Random(3)
    durations = [rng.expovariate(50.0) for _ in range(5000)]
    for value in durations:
        stats.record("orders.create", value)
    summary = stats.summary()["orders.create"]
    ordered = sorted(durations)
    assert list(summary) == ["count", "min", "max", "mean", "p50", "p95", "p99", "total"]
    assert (summary["count"], summary["min"], summary["max"]) == (5000, ordered[0], ordered[-1])
    assert summary["total"] == pytest.approx(math.fsum(durations))
    assert summary["mean"] == pytest.approx(math.fsum(durations) / 5000)
    for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        truth = ordered[math.floor(q * 4999)]
        assert abs(summary[key] - truth) <= stats.relative_error * truth * (1 + 1e-9)


def test_names_are_bounded_and_drops_counted() -> None:
    """Past max_functions new names are not kept (an unbounded label would leak memory)."""
    stats = PerformanceStats(max_functions=2)
    for name in ("a", "b", "c", "c"):
        stats.record(name, 0.1)
    stats.record("a", 0.2)
    assert sorted(stats.summary()) == ["a", "b"]
    assert stats.summary()["a"]["count"] == 2
    assert stats.dropped == 2
    stats.clear()
    assert (stats.summary(), stats.dropped) == ({}, 0)


def test_record_and_traced_feed_the_current_debugger(debugger: debug.Debugger) -> None:
    """debug.record (used by kansoku.timed) and traced calls land in the current debugger."""
    debug.record("metrics.timed.op", 0.25)

    @traced(name="work")
    def work() -> int:
        return 1

    work()
    work()
    summary = debugger.performance.summary()
    assert summary["metrics.timed.op"]["count"] == 1 and summary["metrics.timed.op"]["p50"] == 0.25
    assert summary["work"]["count"] == 2
    debugger.clear()
    assert debugger.performance.summary() == {}
