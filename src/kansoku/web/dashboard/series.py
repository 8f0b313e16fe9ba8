"""Time series for the overview: request rate, error rate and latency quantiles from bucket counts.

`kansoku_request_stats` holds one row per minute, service and instance, with cumulative latency
bucket counts. Summing rows (across instances and minutes) is exact for histograms; quantiles are
then estimated inside a bucket by linear interpolation, as Prometheus' `histogram_quantile` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from kansoku.metrics._http import histogram_quantile

__all__ = ["FIT", "RANGES", "Point", "Window", "parse_buckets", "quantile", "request_points", "window"]

# name -> (minutes shown, minutes per point): about 60-100 points whatever the range.
RANGES: dict[str, tuple[int, int]] = {"1h": (60, 1), "6h": (360, 5), "24h": (1440, 15), "7d": (10080, 120)}
FIT = "fit"  # the default: the window fits the data (see `window`)


@dataclass(frozen=True)
class Window:
    """The overview's time window: `minutes` from `first_minute` (epoch minutes), a point per `step`."""

    name: str  # the range shown: a RANGES key, or FIT for a window that starts at the first data
    first_minute: int
    minutes: int
    step: int

    @property
    def since(self) -> str:
        """The window as the query syntax's `since:` value (`1h`, `12m`)."""
        return f"{self.minutes}m" if self.name == FIT else self.name

    @property
    def label(self) -> str:
        """The window in words, for headings: 'last 6h', 'the last 12 min (since the first request)'."""
        if self.name == FIT:
            return f"the last {self.minutes} min (since the first request)"
        return f"last {self.name}"


def window(name: str, last_minute: int, first_data: int | None) -> Window:
    """The window of range `name` that ends at `last_minute` (the current minute).

    FIT, the default, fits the data: while the first stored minute (`first_data`, looked up over
    the last 24 hours) is under an hour old, the window starts at it, one point per minute, so a
    young store fills the charts' width instead of being a dot at the right edge of a day; older
    data gets the smallest range that holds it (6h, else 24h); no data at all, the last hour.
    """
    if name == FIT:
        if first_data is None or first_data > last_minute:
            name = "1h"
        elif last_minute - first_data < 60:
            return Window(FIT, first_data, last_minute - first_data + 1, 1)
        else:
            name = "6h" if last_minute - first_data < 360 else "24h"
    minutes, step = RANGES[name]
    return Window(name, (last_minute // step + 1) * step - minutes, minutes, step)


@dataclass
class Point:
    """One point of the overview charts: sums over `step` minutes starting at `start` (epoch s)."""

    start: float
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    duration_sum: float = 0.0
    buckets: dict[float, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        """Share of requests answered with a 5xx, in percent (None with no requests)."""
        return 100.0 * self.errors_5xx / self.requests if self.requests else None

    def latency_ms(self, q: float) -> float | None:
        """Estimated `q` quantile of the request duration, in milliseconds."""
        seconds = quantile(q, self.buckets, self.requests)
        return None if seconds is None else seconds * 1000.0


def _bound(key: Any) -> float:
    text = str(key).strip().lower()
    return math.inf if text in ("+inf", "inf", "infinity") else float(text)


def parse_buckets(raw: Any, bounds: Sequence[float]) -> dict[float, int]:
    """Cumulative counts by upper bound, from any of the stored shapes.

    Accepted: {"0.005": 3, ..., "+Inf": 9}, [[0.005, 3], ...], or a list of counts aligned with
    `bounds` (the configured latency buckets), optionally followed by the +Inf count.
    """
    if isinstance(raw, Mapping):
        found: dict[float, int] = {}
        for key, count in raw.items():  # "1" and "1.0" are one bound: add them up
            bound = _bound(key)
            found[bound] = found.get(bound, 0) + int(count)
        return found
    if isinstance(raw, list) and raw and isinstance(raw[0], list | tuple):
        return {_bound(k): int(v) for k, v in raw}
    if isinstance(raw, list):
        edges = [*bounds, math.inf]
        return {edges[i]: int(v) for i, v in enumerate(raw[: len(edges)])}
    return {}


def _merge(into: dict[float, int], more: Mapping[float, int]) -> None:
    for bound, count in more.items():
        into[bound] = into.get(bound, 0) + count


def quantile(q: float, buckets: Mapping[float, int], total: int | None = None) -> float | None:
    """Estimated `q` quantile (seconds) from cumulative bucket counts; None when there is no data."""
    if not buckets:
        return None
    edges = sorted(buckets)
    count = buckets[edges[-1]] if math.isinf(edges[-1]) else max(total or 0, buckets[edges[-1]])
    if count <= 0:
        return None
    return histogram_quantile(q, buckets, count)


def request_points(
    rows: Iterable[Sequence[Any]], first_minute: int, minutes: int, step: int, bounds: Sequence[float]
) -> list[Point]:
    """Fold per-minute rows into `minutes // step` points starting at `first_minute`.

    A row is (minute, requests, errors_4xx, errors_5xx, duration_sum, buckets), the buckets as
    stored (JSON text, or already parsed). Counts are summed under the stored keys and the keys
    turned into bounds once per point: this runs over thousands of rows per page.
    """
    points = [Point(start=(first_minute + i * step) * 60.0) for i in range(minutes // step)]
    raw: list[dict[Any, int]] = [{} for _ in points]
    for minute, requests, errors_4xx, errors_5xx, duration_sum, buckets in rows:
        index = (int(minute) - first_minute) // step
        if not 0 <= index < len(points):
            continue
        point = points[index]
        point.requests += int(requests or 0)
        point.errors_4xx += int(errors_4xx or 0)
        point.errors_5xx += int(errors_5xx or 0)
        point.duration_sum += float(duration_sum or 0.0)
        if isinstance(buckets, str | bytes):
            buckets = orjson.loads(buckets)
        if not isinstance(buckets, Mapping):
            buckets = parse_buckets(buckets, bounds)
        merged = raw[index]
        for key, count in buckets.items():
            merged[key] = merged.get(key, 0) + int(count)
    for point, merged in zip(points, raw, strict=True):
        _merge(point.buckets, parse_buckets(merged, bounds))
    return points


def totals(points: Sequence[Point]) -> Point:
    """All points summed (for the headline numbers)."""
    total = Point(start=points[0].start if points else 0.0)
    for point in points:
        total.requests += point.requests
        total.errors_4xx += point.errors_4xx
        total.errors_5xx += point.errors_5xx
        total.duration_sum += point.duration_sum
        _merge(total.buckets, point.buckets)
    return total
