"""Prometheus view of an ErrorTracker, computed at scrape time (one `collect()`, no wrappers)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kansoku.errors.tracker import ErrorTracker

__all__ = ["ErrorCollector"]

_COUNTERS = (
    ("captured", "Exceptions captured (accepted or dropped)."),
    ("dropped", "Captures dropped because the error queue was full."),
    ("stored", "Error events written to the store."),
    ("store_failures", "Failed attempts to write error events to the store (retried)."),
    ("rejected", "Error events the store refused (bad data, duplicate id); not retried."),
    ("lost", "Accepted error events lost (backlog overflow, shutdown with the store down)."),
    ("filtered", "Error events dropped by an error processor."),
)


class ErrorCollector:
    """Counters and gauges of the tracker: `registry.register(ErrorCollector(tracker))`."""

    def __init__(self, tracker: ErrorTracker) -> None:
        self.tracker = tracker

    def describe(self) -> list[Metric]:
        """Nothing to describe ahead: registering must not call collect()."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The tracker's counters now."""
        stats = self.tracker.stats()
        for name, help_text in _COUNTERS:
            yield CounterMetricFamily(f"kansoku_errors_{name}", help_text, value=stats[name])
        yield GaugeMetricFamily("kansoku_errors_waiting", "Error events accepted and not yet stored.",
                                value=stats["queued"] + stats["waiting"])
        yield GaugeMetricFamily("kansoku_errors_healthy",
                                "1 when the store takes writes and the queue has room.",
                                value=0 if self.tracker.problem() else 1)
