"""kansoku's own health as metrics: queues, dropped items, internal errors, destinations' health."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kansoku._outage import live_links
from kansoku._safety import internal_error_counts
from kansoku._worker import live_workers

__all__ = ["SelfCollector"]


class SelfCollector(Collector):
    """kansoku's own health as metrics: queue depth and capacity, dropped items, internal errors."""

    def describe(self) -> Iterable[Metric]:
        """The families (empty), so that registering does not collect."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """Read every live background worker and the internal error counts."""
        depth, capacity, dropped, errors, up, lost = families = self._families()
        counts = internal_error_counts()
        for worker in sorted(live_workers(), key=lambda w: w.name):
            depth.add_metric([worker.name], worker.depth)
            capacity.add_metric([worker.name], worker.maxsize)
            dropped.add_metric([worker.name], worker.dropped)
            # A series from the start: increase() misses the first error of a series born at 1.
            counts.setdefault(f"worker:{worker.name}", 0)
        for where, count in sorted(counts.items()):
            errors.add_metric([where], count)
        for link in sorted(live_links(), key=lambda link: link.target):
            up.add_metric([link.target], 1 if link.up else 0)
            lost.add_metric([link.target], link.lost)
        return families

    @staticmethod
    def _families() -> list[Any]:
        return [
            GaugeMetricFamily("kansoku_queue_depth", "Items waiting in a kansoku background queue.",
                              labels=["queue"]),
            GaugeMetricFamily("kansoku_queue_capacity", "Bound of a kansoku background queue.",
                              labels=["queue"]),
            CounterMetricFamily("kansoku_dropped_events", "Items dropped because a kansoku queue was full.",
                                labels=["queue"]),
            CounterMetricFamily("kansoku_internal_errors", "kansoku's own failures by place (the app was "
                                "not affected).", labels=["where"]),
            GaugeMetricFamily("kansoku_export_up", "1 while the last send to a destination (Sentry, an OTLP "
                              "collector) went through.", labels=["target"]),
            CounterMetricFamily("kansoku_export_lost", "Items kansoku could not send to a destination.",
                                labels=["target"]),
        ]
