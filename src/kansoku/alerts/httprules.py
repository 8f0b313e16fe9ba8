"""HTTP error-ratio and latency conditions, from `kansoku_request_stats` summed across instances.

Every process writes its own per-minute row (instance = host:pid); a condition is evaluated on
the sum of all rows of a service in the rule's window, so four workers behind one port are judged
as one service. Latency quantiles are estimated from the cumulative bucket counts the way
Prometheus' `histogram_quantile` does (linear inside the bucket).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from kansoku.alerts.rules import AlertRule
from kansoku.metrics._http import histogram_quantile
from kansoku.store.tables import request_stats

__all__ = ["ServiceTotals", "evaluate", "histogram_quantile", "window_totals"]


@dataclass
class ServiceTotals:
    """Requests, 5xx and latency buckets of one service over a window."""

    requests: int = 0
    errors_5xx: int = 0
    errors_4xx: int = 0
    buckets: dict[float, int] = field(default_factory=dict)  # upper bound -> cumulative count


def _bucket_pairs(raw: Any) -> Iterable[tuple[float, int]]:
    """Bucket counts as stored: {"0.1": n, "+Inf": n} or [[0.1, n], ...]."""
    items = raw.items() if isinstance(raw, Mapping) else raw if isinstance(raw, list) else ()
    for item in items:
        try:
            bound, count = item
            yield (math.inf if str(bound) in ("+Inf", "inf", "Infinity") else float(bound)), int(count)
        except (TypeError, ValueError):
            continue  # a malformed pair is skipped, not fatal


def window_totals(engine: Engine, first_minute: int, last_minute: int) -> dict[str, ServiceTotals]:
    """Totals per service for the minutes `first_minute..last_minute` (inclusive), all instances."""
    query = select(request_stats.c.service, request_stats.c.requests, request_stats.c.errors_5xx,
                   request_stats.c.errors_4xx, request_stats.c.buckets).where(
        request_stats.c.minute >= first_minute, request_stats.c.minute <= last_minute)
    totals: dict[str, ServiceTotals] = {}
    with engine.connect() as conn:
        for service, requests, e5, e4, buckets in conn.execute(query):
            entry = totals.setdefault(service, ServiceTotals())
            entry.requests += int(requests or 0)
            entry.errors_5xx += int(e5 or 0)
            entry.errors_4xx += int(e4 or 0)
            for bound, count in _bucket_pairs(buckets):
                entry.buckets[bound] = entry.buckets.get(bound, 0) + count
    return totals


def evaluate(rule: AlertRule, totals: ServiceTotals) -> float | None:
    """The rule's value for one service (ratio or seconds), or None when there is too little traffic."""
    if totals.requests < rule.min_requests:
        return None
    if rule.kind == "http_error_ratio":
        return totals.errors_5xx / totals.requests
    return histogram_quantile(rule.quantile, totals.buckets, totals.requests)
