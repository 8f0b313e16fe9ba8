"""Metrics (chapter 8.2) on prometheus_client: HTTP RED metrics, `timed`, business and custom metrics.

Every metric lives in an injected `CollectorRegistry` (the runtime's; the default registry when
kansoku is not instrumented). Label values are bounded: routes are templates (`/items/{item_id}`),
unmatched paths share one value, unknown methods share one value, and a runaway number of routes
(a mount with parameters, say) folds into `<other>`. Values computed when scraped (system, process,
requests in progress, kansoku's own queues) come from one-method collectors, not polling threads.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics import MetricWrapperBase

from kansoku import debug
from kansoku._delegate import Finish, around
from kansoku._safety import suppress_internal_errors
from kansoku.exceptions import MetricDefinitionError
from kansoku.logs import get_logger
from kansoku.metrics import _multiprocess
from kansoku.metrics._http import (
    OTHER_METHOD,
    OTHER_ROUTE,
    UNMATCHED,
    HttpMetrics,
    InProgress,
    RequestStats,
    route_template,
)
from kansoku.settings import Settings

__all__ = [
    "OTHER_METHOD",
    "OTHER_ROUTE",
    "UNMATCHED",
    "HttpMetrics",
    "InProgress",
    "MetricConfig",
    "RequestStats",
    "adopt_early_metrics",
    "counter",
    "default_registry",
    "gauge",
    "histogram",
    "make_registry",
    "register_metric",
    "route_template",
    "summary",
    "timed",
    "track_business_metric",
    "use_defaults",
]

P = ParamSpec("P")
R = TypeVar("R")

FUNCTION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
_log = get_logger("kansoku.metrics")


def make_registry(settings: Settings) -> CollectorRegistry:
    """A registry with the process, platform, GC, system and kansoku-health collectors in it.

    In multi-process mode (`settings.multiprocess_dir`), prometheus_client is switched to it first,
    so every metric made afterwards writes to the shared directory.
    """
    from kansoku.metrics._self import SelfCollector
    from kansoku.metrics._system import register_runtime_collectors

    if settings.multiprocess_dir is not None:
        _multiprocess.setup(settings.multiprocess_dir)
    registry = CollectorRegistry()
    register_runtime_collectors(registry)
    registry.register(SelfCollector())
    return registry


# --- business and custom metrics (get-or-create by name) --------------------------------------------

MetricType = Literal["counter", "gauge", "histogram", "summary"]
_KINDS: Final[dict[str, type[MetricWrapperBase]]] = {
    "counter": Counter, "gauge": Gauge, "histogram": Histogram, "summary": Summary,
}
_defined: dict[CollectorRegistry, dict[str, tuple[str, tuple[str, ...], str, Any]]] = {}
_define_lock = threading.Lock()


@dataclass(frozen=True)
class MetricConfig:
    """A custom metric (the chapter's `MetricConfig`), for `register_metric`.

    `objectives` is accepted for the chapter's shape, but prometheus_client's summaries export only
    count and sum; use a histogram for quantiles (`histogram_quantile` in PromQL).
    """

    name: str
    description: str
    metric_type: MetricType = "counter"
    category: str = "business"
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    objectives: Mapping[float, float] | None = None


def register_metric(config: MetricConfig, *, registry: CollectorRegistry | None = None) -> Any:
    """Get or create the metric `config` describes."""
    extra = {"buckets": config.buckets} if config.buckets and config.metric_type == "histogram" else {}
    return _get_or_create(config.metric_type, config.name, config.description, config.labels, registry, extra)


def counter(name: str, documentation: str = "", labelnames: Iterable[str] = (), *,
            registry: CollectorRegistry | None = None) -> Counter:
    """Get or create a counter (exported as `<name>_total`)."""
    return cast(Counter, _get_or_create("counter", name, documentation, labelnames, registry, {}))


def gauge(name: str, documentation: str = "", labelnames: Iterable[str] = (), *,
          registry: CollectorRegistry | None = None, multiprocess_mode: str = "all") -> Gauge:
    """Get or create a gauge (`multiprocess_mode` as prometheus_client's, for multi-worker servers)."""
    return cast(Gauge, _get_or_create("gauge", name, documentation, labelnames, registry,
                                      {"multiprocess_mode": multiprocess_mode}))


def histogram(name: str, documentation: str = "", labelnames: Iterable[str] = (), *,
              buckets: Iterable[float] | None = None, registry: CollectorRegistry | None = None) -> Histogram:
    """Get or create a histogram (prometheus_client's default buckets unless given)."""
    extra = {"buckets": tuple(buckets)} if buckets is not None else {}
    return cast(Histogram, _get_or_create("histogram", name, documentation, labelnames, registry, extra))


def summary(name: str, documentation: str = "", labelnames: Iterable[str] = (), *,
            registry: CollectorRegistry | None = None) -> Summary:
    """Get or create a summary (count and sum)."""
    return cast(Summary, _get_or_create("summary", name, documentation, labelnames, registry, {}))


def _get_or_create(kind: str, name: str, documentation: str, labelnames: Iterable[str],
                   registry: CollectorRegistry | None, extra: dict[str, Any]) -> Any:
    """The metric called `name` in the registry, made on first use; a different definition is an error."""
    registry = registry if registry is not None else default_registry()
    labels = tuple(labelnames)
    key = name.removesuffix("_total") if kind == "counter" else name
    known = _defined.get(registry, {}).get(key)
    if known is None:
        with _define_lock:
            known = _defined.setdefault(registry, {}).get(key)
            if known is None:
                metric = _create(kind, name, documentation, labels, registry, extra)
                known = _defined[registry][key] = (kind, labels, documentation, metric)
    old_kind, old_labels, old_doc, metric = known
    if (old_kind, old_labels) != (kind, labels) or (documentation and old_doc and documentation != old_doc):
        raise MetricDefinitionError(
            f"metric {name!r} is already defined as a {old_kind} with labels {list(old_labels)} "
            f"and help {old_doc!r}; now asked for a {kind} with labels {list(labels)} and help "
            f"{documentation!r}. Use one definition (or another name).")
    return metric


def _create(kind: str, name: str, documentation: str, labels: tuple[str, ...], registry: CollectorRegistry,
            extra: dict[str, Any]) -> Any:
    try:
        return _KINDS[kind](name, documentation or name.replace("_", " "), labels, registry=registry, **extra)
    except ValueError as exc:  # a name clash with a metric made outside these helpers, or a bad name
        raise MetricDefinitionError(f"cannot define {kind} {name!r}: {exc}") from exc


def adopt_early_metrics(registry: CollectorRegistry) -> list[str]:
    """Serve from `registry` the metrics the helpers made before there was a runtime; the clashes.

    Made before `instrument()` (at import time, as the chapter's code does), they went to
    prometheus_client's default registry, which `/metrics` does not read. The same objects are
    registered in `registry` too: values recorded before and after are one series, and asking for
    the name again returns the object the module already holds. A name `registry` already has
    (one of kansoku's own) is not adopted; the names returned say which.
    """
    clashes = []
    with _define_lock:
        mine = _defined.setdefault(registry, {})
        for key, known in list(_defined.get(REGISTRY, {}).items()):
            if key in mine or registry is REGISTRY:
                continue
            try:
                registry.register(known[3])
            except ValueError:  # a name the registry has already
                clashes.append(key)
                continue
            mine[key] = known
    return clashes


@dataclass
class _Defaults:
    """What the helpers use when the call names no registry or threshold: set by the runtime."""

    registry: CollectorRegistry = REGISTRY
    slow_ms: float = 1000.0


_DEFAULTS = _Defaults()


def use_defaults(registry: CollectorRegistry | None = None, *, slow_ms: float = 1000.0) -> None:
    """Make `registry` (None: prometheus_client's default) where the helpers put their metrics, and
    `slow_ms` timed's slow-call threshold. The runtime calls it when it is built and shut down:
    metrics are given their defaults, they never look the runtime up."""
    _DEFAULTS.registry = REGISTRY if registry is None else registry
    _DEFAULTS.slow_ms = slow_ms


def default_registry() -> CollectorRegistry:
    """The current runtime's registry, or prometheus_client's default one when not instrumented."""
    return _DEFAULTS.registry


def track_business_metric(
    name: str, value: float = 1.0, labels: Mapping[str, str] | None = None, *,
    registry: CollectorRegistry | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Add `value` to the counter `name` (labels fixed here) each time the function succeeds."""
    fixed = dict(labels or {})
    names = tuple(sorted(fixed))

    def record(exc: BaseException | None) -> None:
        if exc is None:
            metric = counter(name, f"Business metric {name}.", names, registry=registry)
            (metric.labels(**fixed) if names else metric).inc(value)

    finish = _quietly(record)

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        return around(func, lambda: finish)

    return decorator


# --- timed ------------------------------------------------------------------------------------------


def timed(name: str | None = None, *, module: str | None = None, slow_ms: float | None = None,
          registry: CollectorRegistry | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record `function_duration_seconds{function,module}` and `function_calls_total{function,module,status}`.

    `status` is `success`, or the exception's type name when the call raised (the exception is
    re-raised). Calls slower than `slow_ms` (default: the `slow_threshold_ms` setting) log a WARNING.
    Works on functions, coroutine functions, generator and async generator functions; a generator
    is measured from its first step to the end of its iteration (the chapter's `measure_performance`).
    """

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        function, mod = name or func.__qualname__, module or func.__module__
        children: dict[tuple[CollectorRegistry, str], tuple[Any, Any]] = {}
        # The summary's name is traced's (module.qualname), unless a traced inside counts the calls.
        summary = None if getattr(func, debug.SUMMARY_ATTR, False) else f"{mod}.{function}"

        def record(started: float, exc: BaseException | None) -> None:
            if exc is not None and not isinstance(exc, Exception):
                return  # cancelled or interrupted: neither a success nor a failure of the function
            elapsed = time.perf_counter() - started
            status = "success" if exc is None else type(exc).__name__
            if summary is not None:
                debug.record(summary, elapsed)
            reg = registry if registry is not None else default_registry()
            found = children.get((reg, status))
            if found is None:
                duration = histogram("function_duration_seconds", "Duration of calls to timed functions.",
                                     ("function", "module"), buckets=FUNCTION_BUCKETS, registry=reg)
                calls = counter("function_calls", "Calls to timed functions, by outcome: success or the "
                                "exception type.", ("function", "module", "status"), registry=reg)
                found = children[(reg, status)] = (duration.labels(function, mod),
                                                   calls.labels(function, mod, status))
            found[0].observe(elapsed)
            found[1].inc()
            limit = slow_ms if slow_ms is not None else _DEFAULTS.slow_ms
            if elapsed * 1000 > limit:
                _log.warning("slow call", category="performance", function=function, module=mod,
                             duration_ms=round(elapsed * 1000, 3), threshold_ms=limit, status=status)

        def start() -> Finish:
            return _quietly(functools.partial(record, time.perf_counter()))

        wrapper = around(func, start)
        setattr(wrapper, debug.SUMMARY_ATTR, True)
        return wrapper

    return decorator


def _quietly(record: Finish) -> Finish:
    """`record` made safe to run at a call's end: a failure there is kansoku's, never the function's.

    A conflicting metric definition is the caller's mistake, though, and is raised.
    """

    def finish(exc: BaseException | None) -> None:
        try:
            record(exc)
        except MetricDefinitionError:
            raise
        except Exception as error:
            _internal_error("metrics.decorator", error)

    return finish


def _internal_error(where: str, exc: Exception) -> None:
    """Report `exc` as kansoku's internal error (raised in strict mode)."""
    with suppress_internal_errors(where):
        raise exc
