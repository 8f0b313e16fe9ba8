"""The performance summary: per-function figures, bounded names, fed by traced and by record()."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry

from kansoku import debug
from kansoku.debug import PerformanceStats
from kansoku.metrics import timed
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


def test_timed_calls_are_in_the_summary_once_even_with_traced() -> None:
    """kansoku.timed feeds the summary (module.qualname, as traced); stacked with traced, each call counts once."""
    registry = CollectorRegistry()

    @timed(registry=registry)
    def alone() -> int:
        return 1

    @timed(registry=registry)
    @traced()
    def timed_outside() -> int:
        return 2

    @traced()
    @timed(registry=registry)
    def traced_outside() -> int:
        return 3

    for _ in range(3):
        alone(), timed_outside(), traced_outside()
    summary = debug.current().performance.summary()
    prefix = f"{__name__}.test_timed_calls_are_in_the_summary_once_even_with_traced.<locals>"
    assert {name: row["count"] for name, row in summary.items()} == {
        f"{prefix}.alone": 3, f"{prefix}.timed_outside": 3, f"{prefix}.traced_outside": 3}
