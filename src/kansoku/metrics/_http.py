"""What kansoku counts about HTTP requests: RED metrics, requests in progress, per-minute statistics.

Split from `kansoku.metrics` (which re-exports these names) because it is the request path's own
code: `HttpMetrics.observe` and `InProgress.track` run on every request and are kept cheap.
"""

from __future__ import annotations

import bisect
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from kansoku._safety import report_internal_error
from kansoku.metrics import _multiprocess
from kansoku.settings import Settings
from kansoku.typing import Scope

__all__ = [
    "HTTP_METHODS",
    "OTHER_METHOD",
    "OTHER_ROUTE",
    "UNMATCHED",
    "HttpMetrics",
    "InProgress",
    "LiveRequest",
    "RequestStats",
    "histogram_quantile",
    "route_template",
]

UNMATCHED: Final = "<unmatched>"
"""The route label of every request no route matched (404s, bare ASGI apps)."""
OTHER_ROUTE: Final = "<other>"
"""The route label once `max_routes` distinct templates have been seen."""
OTHER_METHOD: Final = "_OTHER"
"""The method label of every non-standard method (OpenTelemetry's spelling)."""
HTTP_METHODS: Final = frozenset({
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
})


class HttpMetrics(Collector):
    """RED metrics of HTTP requests, by method, route template and status.

    `observe()` runs on every request, so in one process it adds to plain tallies under one lock
    (about a microsecond, against three for prometheus_client's metric objects, which take a lock
    per value) and the tallies are exported as metric families when scraped. In multi-process mode
    the values must live in the shared files, so prometheus_client's metric objects record them.
    """

    def __init__(self, registry: CollectorRegistry, settings: Settings, *, max_routes: int = 1000,
                 stats: RequestStats | None = None) -> None:
        if settings.multiprocess_dir is not None:
            _multiprocess.setup(settings.multiprocess_dir)
        self.bounds = tuple(sorted(settings.latency_buckets))
        # The per-minute statistics, counted by `observe` too when their buckets are these: one
        # call, one lock (theirs, shared) and one bucket search per request instead of two.
        self.stats = stats if stats is not None and stats.bounds == self.bounds else None
        as_text: Callable[[float], str] = floatToGoString  # untyped in prometheus_client
        self._les = [as_text(bound) for bound in self.bounds] + ["+Inf"]
        self._routes: dict[str, str] = {UNMATCHED: UNMATCHED}
        self._max_routes = max_routes
        self._lock = self.stats.lock if self.stats is not None else threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}
        self._shared = _SharedMetrics(registry, self.bounds) if _multiprocess.enabled() else None
        if self._shared is None:
            registry.register(self)
        self.in_progress = InProgress(self.route_label, registry, multiprocess=self._shared is not None)

    def route_label(self, template: str) -> str:
        """The bounded label for a route template."""
        label = self._routes.get(template)
        if label is None:
            room = len(self._routes) <= self._max_routes and len(template) <= 200
            label = template if room else OTHER_ROUTE
            if room:
                self._routes[template] = label
        return label

    def observe(self, method: str, route: str, status: int, duration_s: float, request_size: int,
                response_size: int, trace_id: str | None = None) -> None:
        """Record one answered request; `trace_id` becomes the latency exemplar (OpenMetrics)."""
        key = (method if method in HTTP_METHODS else OTHER_METHOD, self.route_label(route))
        if not 100 <= status <= 599:
            status = 0  # exported as "invalid": a broken app must not mint label values
        index = bisect.bisect_left(self.bounds, duration_s)  # first bound >= value: its `le` bucket
        if self._shared is not None:
            self._shared.observe(key, status, duration_s, request_size, response_size)
            if trace_id is not None:
                self._shared.keep_exemplar(key, index, (trace_id, duration_s, time.time()))
            if self.stats is not None:
                self.stats.record(status, duration_s)
            return
        series = self._series.get(key)
        if series is None:
            series = self._series.setdefault(key, _Series(len(self.bounds) + 1))
        with self._lock:
            series.buckets[index] += 1
            series.duration_sum += duration_s
            series.request_bytes += request_size
            series.response_bytes += response_size
            series.statuses[status] = series.statuses.get(status, 0) + 1
            if trace_id is not None:
                series.exemplars[index] = (trace_id, duration_s, time.time())
            if self.stats is not None:
                self.stats.add(status, duration_s, index)

    def exemplars(self) -> dict[tuple[str, str, str], Exemplar]:
        """Multi-process mode: this worker's latest latency exemplars by (method, route, le).

        The shared files keep no exemplars, so the worker that answers a scrape adds its own to
        the summed buckets (`_multiprocess.scrape_registry`): an exemplar is one example
        request, and over successive scrapes every worker's come through.
        """
        if self._shared is None:
            return {}
        with self._lock:
            kept = [(key, list(row)) for key, row in self._shared.exemplars.items()]
        return {(*key, le): Exemplar({"trace_id": e[0]}, e[1], e[2])
                for key, row in kept for le, e in zip(self._les, row, strict=True) if e is not None}

    def describe(self) -> Iterable[Metric]:
        """The family names, so the registry can check for collisions without collecting."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """The tallies as counter, histogram and summary families (with exemplars)."""
        requests, duration, request_sizes, response_sizes = families = self._families()
        with self._lock:
            snapshot = [(key, list(s.buckets), s.duration_sum, s.request_bytes, s.response_bytes,
                         dict(s.statuses), list(s.exemplars)) for key, s in self._series.items()]
        for labels, buckets, total, request_bytes, response_bytes, statuses, exemplars in snapshot:
            for status, count in sorted(statuses.items()):
                requests.add_metric([*labels, str(status) if status else "invalid"], count)
            rows: list[Any] = []
            cumulative = 0
            for le, count, exemplar in zip(self._les, buckets, exemplars, strict=True):
                cumulative += count
                if exemplar is None:
                    rows.append((le, cumulative))
                else:
                    trace_id, value, timestamp = exemplar
                    rows.append((le, cumulative, Exemplar({"trace_id": trace_id}, value, timestamp)))
            duration.add_metric(labels, rows, total)
            request_sizes.add_metric(labels, cumulative, request_bytes)
            response_sizes.add_metric(labels, cumulative, response_bytes)
        return families

    @staticmethod
    def _families() -> list[Any]:
        labels = ("method", "route")
        return [
            CounterMetricFamily("http_requests", _HELP["requests"], labels=(*labels, "status")),
            HistogramMetricFamily("http_request_duration_seconds", _HELP["duration"], labels=labels),
            SummaryMetricFamily("http_request_size_bytes", _HELP["request_size"], labels=labels),
            SummaryMetricFamily("http_response_size_bytes", _HELP["response_size"], labels=labels),
        ]


_HELP: Final = {
    "requests": "HTTP requests answered, by method, route template and status.",
    "duration": "Time to answer an HTTP request.",
    "request_size": "Size of HTTP request bodies.",
    "response_size": "Size of HTTP response bodies.",
}


class _Series:
    """The tallies of one (method, route): latency buckets (the last is +Inf), sums, statuses."""

    __slots__ = ("buckets", "duration_sum", "exemplars", "request_bytes", "response_bytes", "statuses")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.exemplars: list[tuple[str, float, float] | None] = [None] * size
        self.duration_sum = 0.0
        self.request_bytes = self.response_bytes = 0
        self.statuses: dict[int, int] = {}


class _SharedMetrics:
    """The same metrics as prometheus_client objects, whose values live in the multi-process files."""

    def __init__(self, registry: CollectorRegistry, bounds: tuple[float, ...]) -> None:
        labels = ("method", "route")
        self.requests = Counter("http_requests", _HELP["requests"], (*labels, "status"), registry=registry)
        self.duration = Histogram("http_request_duration_seconds", _HELP["duration"], labels, buckets=bounds,
                                  registry=registry)
        self.request_size = Summary("http_request_size_bytes", _HELP["request_size"], labels,
                                    registry=registry)
        self.response_size = Summary("http_response_size_bytes", _HELP["response_size"], labels,
                                     registry=registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._size = len(bounds) + 1
        self.exemplars: dict[tuple[str, str], list[tuple[str, float, float] | None]] = {}

    def keep_exemplar(self, key: tuple[str, str], index: int, exemplar: tuple[str, float, float]) -> None:
        """The latest request of a latency bucket, kept in this process (the files keep none)."""
        row = self.exemplars.get(key)
        if row is None:
            row = self.exemplars.setdefault(key, [None] * self._size)
        row[index] = exemplar  # one list slot: atomic under the GIL, no lock on the request path

    def observe(self, key: tuple[str, str], status: int, duration_s: float, request_size: int,
                response_size: int) -> None:
        """Record one request (exemplars are not supported by the multi-process files)."""
        children = self._children.get((*key, status))
        if children is None:
            children = self._children[(*key, status)] = (
                self.requests.labels(*key, str(status) if status else "invalid"), self.duration.labels(*key),
                self.request_size.labels(*key), self.response_size.labels(*key))
        children[0].inc()
        children[1].observe(duration_s)
        children[2].observe(request_size)
        children[3].observe(response_size)


class LiveRequest(Protocol):
    """A request in progress as `InProgress` counts it (the middlewares' exchanges are ones)."""

    method: str

    def live_route(self) -> str:
        """The route template as far as known now."""
        ...


class InProgress(Collector):
    """`http_requests_in_progress{method,route}`, counted from the live requests when scraped.

    The route of a request is known only once the app has routed it, so the live requests are
    kept (`track`/`untrack`, a dict insert and pop) and counted at scrape time, by the route they
    have by then. In multi-process mode a scrape reaches one worker, so each worker publishes its
    counts to a shared `livesum` gauge once a second instead.
    """

    def __init__(self, route_label: Callable[[str], str], registry: CollectorRegistry | None = None, *,
                 multiprocess: bool = False, interval: float = 1.0) -> None:
        self._route_label = route_label
        self._interval = interval  # 0: no publishing thread (tests call publish())
        self._live: dict[int, LiveRequest] = {}
        self._gauge: Gauge | None = None
        self._published: set[tuple[str, str]] = set()
        self._publisher: tuple[int, threading.Thread] | None = None
        if multiprocess:
            self._gauge = Gauge("http_requests_in_progress", self._HELP, ("method", "route"),
                                multiprocess_mode="livesum", registry=registry)
        elif registry is not None:
            registry.register(self)

    _HELP = "HTTP requests being answered now."

    def track(self, request: LiveRequest) -> None:
        """A request started; its route is asked for (`live_route()`) when counted."""
        self._live[id(request)] = request
        if self._gauge is not None and self._interval and (
                self._publisher is None or self._publisher[0] != os.getpid()):
            self._start_publisher()

    def untrack(self, request: LiveRequest) -> None:
        """The request finished."""
        self._live.pop(id(request), None)

    def counts(self) -> dict[tuple[str, str], int]:
        """Live requests by (method label, route label)."""
        counts: dict[tuple[str, str], int] = {}
        for request in list(self._live.values()):  # a copy: requests come and go meanwhile
            method = request.method
            key = (method if method in HTTP_METHODS else OTHER_METHOD, self._route_label(request.live_route()))
            counts[key] = counts.get(key, 0) + 1
        return counts

    def describe(self) -> Iterable[Metric]:
        """The family name, so the registry can check for collisions without collecting."""
        return [GaugeMetricFamily("http_requests_in_progress", self._HELP, labels=("method", "route"))]

    def collect(self) -> Iterable[Metric]:
        """The counts as a gauge family."""
        family = GaugeMetricFamily("http_requests_in_progress", self._HELP, labels=("method", "route"))
        for (method, route), count in sorted(self.counts().items()):
            family.add_metric((method, route), count)
        return [family]

    def publish(self) -> None:
        """Write the counts to the shared gauge (multi-process mode); gone routes go to zero."""
        if self._gauge is None:
            return
        counts = self.counts()
        for key in self._published - counts.keys():
            self._gauge.labels(*key).set(0)
        for key, count in counts.items():
            self._gauge.labels(*key).set(count)
        self._published = set(counts)

    def _start_publisher(self) -> None:
        def run() -> None:
            while True:
                time.sleep(self._interval)
                try:
                    self.publish()
                except Exception as exc:  # a thread has no caller to raise to
                    report_internal_error("metrics.in-progress", exc)

        thread = threading.Thread(target=run, name="kansoku-in-progress", daemon=True)
        self._publisher = (os.getpid(), thread)
        thread.start()


def route_template(scope: Scope, root_path: str) -> str:
    """The route template the app matched (Starlette/FastAPI's `scope["route"]`), or UNMATCHED.

    Mounted apps extend `root_path`; their part of it is put in front of the inner route's path.
    The template is Starlette's `path_format`, without convertors (`/traces/{trace_id}`, not
    `{trace_id:str}`), as OpenTelemetry's `http.route` and every other framework spell it.
    """
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    inner_root: str = scope.get("root_path", "")
    if inner_root == root_path or not inner_root.startswith(root_path):
        return path or "/"
    mounted = inner_root[len(root_path):]
    return mounted + "/{path}" if hasattr(route, "routes") else mounted + path


class _Minute:
    __slots__ = ("buckets", "duration_sum", "errors_4xx", "errors_5xx", "requests")

    def __init__(self, size: int) -> None:
        self.requests = self.errors_4xx = self.errors_5xx = 0
        self.duration_sum = 0.0
        self.buckets = [0] * size


class RequestStats:
    """Requests per minute (count, 4xx, 5xx, latency histogram), in memory, flushed to the store.

    The dashboard and the HTTP alert rules read `kansoku_request_stats`; each process writes its own
    rows (instance = host:pid), so workers never contend for a row.
    """

    def __init__(self, service: str, buckets: Iterable[float], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.bounds = tuple(sorted(buckets))
        self._clock = clock
        self._minutes: dict[int, _Minute] = {}
        self.lock = threading.Lock()  # flush() runs on a background thread; HttpMetrics shares it

    def record(self, status: int, duration_s: float) -> None:
        """Count one answered request."""
        with self.lock:
            self.add(status, duration_s, bisect.bisect_left(self.bounds, duration_s))

    def add(self, status: int, duration_s: float, index: int) -> None:
        """Count one answered request whose latency bucket is `index`; the caller holds `lock`."""
        minute = int(self._clock() // 60)
        row = self._minutes.get(minute)
        if row is None:
            row = self._minutes[minute] = _Minute(len(self.bounds) + 1)
        row.requests += 1
        if status >= 500:
            row.errors_5xx += 1
        elif status >= 400:
            row.errors_4xx += 1
        row.duration_sum += duration_s
        row.buckets[index] += 1

    def pending(self) -> dict[int, dict[str, Any]]:
        """What the next flush would add, by minute (as rows)."""
        with self.lock:
            return {minute: self._row(row) for minute, row in self._minutes.items()}

    def flush(self, engine: Any) -> int:
        """Add the counts gathered so far to the store's rows; returns the number of rows written.

        On a failed write the counts are kept for the next flush, and the error is raised.
        """
        from sqlalchemy import select

        from kansoku.store import write_transaction
        from kansoku.store.tables import request_stats as table

        with self.lock:
            taken, self._minutes = self._minutes, {}
        if not taken:
            return 0
        instance = f"{socket.gethostname()}:{os.getpid()}"[:64]
        try:
            # A read then a write: on SQLite the lock is taken first, or another writer (a second
            # runtime or worker on the same file) makes the upgrade fail with "database is locked".
            with write_transaction(engine) as conn:
                for minute, row in sorted(taken.items()):
                    new = self._row(row)
                    key = (table.c.minute == minute) & (table.c.service == self.service) & (
                        table.c.instance == instance)
                    old = conn.execute(select(table).where(key)).mappings().first()
                    if old is None:
                        conn.execute(table.insert().values(minute=minute, service=self.service,
                                                           instance=instance, **new))
                    else:
                        conn.execute(table.update().where(key).values(**_merge_rows(dict(old), new)))
        except BaseException:
            with self.lock:
                for minute, row in taken.items():
                    _add_minute(self._minutes.setdefault(minute, _Minute(len(row.buckets))), row)
            raise
        return len(taken)

    def _row(self, row: _Minute) -> dict[str, Any]:
        cumulative, total = {}, 0
        for bound, count in zip([*self.bounds, float("inf")], row.buckets, strict=True):
            total += count
            cumulative["+Inf" if bound == float("inf") else repr(bound)] = total
        return {"requests": row.requests, "errors_4xx": row.errors_4xx, "errors_5xx": row.errors_5xx,
                "duration_sum": row.duration_sum, "buckets": cumulative}


def _merge_rows(old: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    buckets = dict(old["buckets"] or {})
    for bound, count in new["buckets"].items():
        buckets[bound] = buckets.get(bound, 0) + count
    counts = ("requests", "errors_4xx", "errors_5xx", "duration_sum")
    merged = {name: old[name] + new[name] for name in counts}
    return {**merged, "buckets": buckets}


def _add_minute(into: _Minute, row: _Minute) -> None:
    into.requests += row.requests
    into.errors_4xx += row.errors_4xx
    into.errors_5xx += row.errors_5xx
    into.duration_sum += row.duration_sum
    into.buckets = [a + b for a, b in zip(into.buckets, row.buckets, strict=True)]


def histogram_quantile(q: float, buckets: Mapping[float, int], total: int | None = None) -> float | None:
    """The q-quantile from cumulative bucket counts (`RequestStats` rows), as Prometheus' `histogram_quantile`
    estimates it: linear inside the bucket; None with no observations."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    count = total if total is not None else buckets[bounds[-1]]
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0
    for bound in bounds:
        cumulative = buckets[bound]
        if cumulative >= rank:
            if math.isinf(bound):  # in the +Inf bucket: the largest finite bound, as Prometheus does
                return lower
            width = cumulative - below
            return lower + (bound - lower) * ((rank - below) / width if width else 1.0)
        lower, below = bound, cumulative
    return lower
