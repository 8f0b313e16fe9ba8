"""OpenTelemetry tracing (chapter 8.3): provider, exporters, server spans, log correlation, `traced`.

The runtime wires it like this::

    provider = configure_tracing(settings, store.engine, service, set_global=True, registry=registry)
    tracing.configure(settings, provider, debugger=debugger, capture=errors.capture)
    request_tracer = RequestTracer(provider, settings)   # the middleware's server spans
    configure_logging(settings, hooks=[add_trace_ids, ...])
    ...
    provider.shutdown(); uninstrument_libraries(); tracing.reset()

Spans go over OTLP (HTTP, or gRPC with the extra) when an endpoint is set, else into the store for
the dashboard, within a per-process budget of traces per second (`trace_store_rate`; errors and
slow requests always kept: see `kansoku.tracing._span_store`). The standard `OTEL_*` settings
(sampler, propagators, exporters, per-signal endpoints) are applied by `kansoku.tracing._otel`;
headers, timeouts, batch sizes and resource attributes are read by the SDK itself.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any, Final

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation import _SPAN_KEY
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from kansoku import debug
from kansoku._outage import Link
from kansoku.exceptions import ConfigError
from kansoku.logs import get_logger
from kansoku.redact import redactor_for
from kansoku.settings import Settings
from kansoku.tracing._linked import LinkedExporter
from kansoku.tracing._otel import (
    build_propagator,
    build_sampler,
    otlp_span_exporter,
    span_exporter_target,
    traces_url,
)
from kansoku.tracing._redacting import RedactingSpanExporter
from kansoku.tracing._request_span import RequestTracer
from kansoku.tracing._span_store import SpanStoreCollector, StoreSpanExporter, StoreSpanProcessor
from kansoku.tracing._spans import LightSpan, LightTracer, current_context
from kansoku.tracing._sql import instrument_engine, start_sql_tracing, stop_sql_tracing, untraced
from kansoku.tracing._traced import TraceLevel, configure_traced, traced
from kansoku.typing import EventDict

__all__ = [
    "LightSpan",
    "LightTracer",
    "RedactingSpanExporter",
    "RequestTracer",
    "StoreSpanExporter",
    "StoreSpanProcessor",
    "TraceLevel",
    "add_trace_ids",
    "build_propagator",
    "build_resource",
    "configure",
    "configure_tracing",
    "current_trace_ids",
    "inject_headers",
    "instrument_engine",
    "instrument_libraries",
    "reset",
    "traced",
    "traces_url",
    "uninstrument_libraries",
    "untraced",
]

_INSTRUMENTORS: Final = {
    "httpx": ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    "requests": ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
}
_active_instrumentors: list[Any] = []
_API_TEXTMAP: Final = propagate.get_global_textmap()  # what the API made of OTEL_PROPAGATORS; reset() restores it
log = get_logger("kansoku.tracing")


def build_resource(settings: Settings, service: str | None = None) -> Resource:
    """The service's identity on every span (OTEL_RESOURCE_ATTRIBUTES adds to it)."""
    attributes: dict[str, Any] = {
        "service.name": service or settings.service,
        "deployment.environment": settings.environment,
        "deployment.environment.name": settings.environment,
        "host.name": socket.gethostname(),
    }
    if settings.version:
        attributes["service.version"] = settings.version
    return Resource.create(attributes)


def configure_tracing(
    settings: Settings,
    engine: Engine | None,
    service: str | None = None,
    *,
    set_global: bool = False,
    registry: CollectorRegistry | None = None,
) -> TracerProvider:
    """A TracerProvider for `settings`: resource, the sampler and exporters of `kansoku.tracing._otel`.

    The global provider and propagator are left alone unless `set_global` (tests build many
    providers; the runtime sets them so that the OpenTelemetry instrumentors and user code find them). Library
    instrumentation is switched on as the settings say. With a `registry`, the local store's
    budget counters (`kansoku_traces_stored_total`...) are registered in it.
    """
    provider = TracerProvider(resource=build_resource(settings, service), sampler=build_sampler(settings))
    for processor in _processors(settings, engine):
        provider.add_span_processor(processor)
        if registry is not None and isinstance(processor, StoreSpanProcessor):
            registry.register(SpanStoreCollector(processor))
    if set_global:
        trace.set_tracer_provider(provider)
        propagate.set_global_textmap(build_propagator(settings))
    instrument_libraries(settings, provider)
    _quiet_otel_warnings()
    return provider


class _OncePerMinute(logging.Filter):
    """Let each distinct message through once a minute: the SDK warns per span when its queue is
    full ("Queue full, dropping span"), which at a few thousand requests a second would cost more
    than the spans themselves."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._last: dict[str, float] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now, key = self._clock(), f"{record.name}:{record.msg}"
        if now - self._last.get(key, -120.0) < 60.0:
            self.suppressed += 1
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


_OTEL_FILTER = _OncePerMinute()


def _quiet_otel_warnings() -> None:
    for name in ("opentelemetry.sdk._shared_internal", "opentelemetry.sdk.trace.export"):
        target = logging.getLogger(name)
        if _OTEL_FILTER not in target.filters:
            target.addFilter(_OTEL_FILTER)


def _processors(settings: Settings, engine: Engine | None) -> list[SpanProcessor]:
    # Every exporter gets the spans through the redactor first (the app's attributes, the
    # User-Agent, third-party instrumentations' URLs): see kansoku.tracing._redacting.
    redactor = redactor_for(settings)
    processors: list[SpanProcessor] = []
    target = span_exporter_target(settings)
    if target is not None and target[0] == "otlp":
        exporter: SpanExporter = LinkedExporter(otlp_span_exporter(target[1], settings.otlp_protocol),
                                                Link("otlp", log))
        processors.append(BatchSpanProcessor(RedactingSpanExporter(exporter, redactor)))
    elif target is not None:
        processors.append(BatchSpanProcessor(RedactingSpanExporter(ConsoleSpanExporter(out=sys.stdout), redactor)))
    elif settings.traces_exporter is None and settings.store_spans and engine is not None:
        exporter = StoreSpanExporter(engine, max_spans=settings.max_stored_spans,
                                     retention_seconds=settings.retention_days * 86400.0)
        processors.append(StoreSpanProcessor(RedactingSpanExporter(exporter, redactor),
                                             traces_per_second=settings.trace_store_rate,
                                             slow_seconds=settings.slow_threshold_ms / 1000.0))
    if settings.trace_console and (target is None or target[0] != "console"):  # today's stdout
        processors.append(BatchSpanProcessor(RedactingSpanExporter(ConsoleSpanExporter(out=sys.stdout), redactor)))
    return processors


# --- library instrumentation -------------------------------------------------------------------


def instrument_libraries(settings: Settings, provider: TracerProvider) -> list[str]:
    """Switch on the instrumentations the settings ask for; returns their names.

    httpx and requests: the official instrumentors. SQLAlchemy: kansoku's own listeners
    (`kansoku.tracing._sql`), which also serve `instrument_engine()` with the setting off.
    """
    redactor = redactor_for(settings)
    start_sql_tracing(provider, redactor, every_engine=settings.instrument_sqlalchemy)
    wanted = [name for name, on in (("httpx", settings.instrument_httpx),
                                    ("requests", settings.instrument_requests)) if on]
    for name in wanted:
        module_name, class_name = _INSTRUMENTORS[name]
        try:
            module = importlib.import_module(module_name)
            from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
        except ImportError:
            raise ConfigError(
                f"instrument_{name}=true needs {module_name.replace('.', '-').replace('_', '-')}: "
                "pip install 'kansoku[instrumentation]'"
            ) from None
        instrumentor = getattr(module, class_name)()
        if instrumentor.is_instrumented_by_opentelemetry:  # a singleton: re-point it at this provider
            instrumentor.uninstrument()
        conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
        if conflict is not None:  # their upper bounds are conservative: say so, and instrument anyway
            log.warning("instrumenting a library version the instrumentation does not list",
                        library=name, conflict=str(conflict))
        instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
        _active_instrumentors.append(instrumentor)
    return [*wanted, "sqlalchemy"] if settings.instrument_sqlalchemy else wanted


def uninstrument_libraries() -> None:
    """Undo `instrument_libraries` (the instrumentors patch library classes process-wide)."""
    stop_sql_tracing()
    while _active_instrumentors:
        instrumentor = _active_instrumentors.pop()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


# --- correlation ---------------------------------------------------------------------------------


def add_trace_ids(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the current span's trace and span ids on every log line."""
    span = current_context().get(_SPAN_KEY)
    if type(span) is LightSpan:  # kansoku's spans keep their ids in hex once formatted
        event_dict.setdefault("trace_id", span.trace_id)
        event_dict.setdefault("span_id", span.span_id)
        return event_dict
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's (trace_id, span_id) in hex, or None outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def inject_headers(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add W3C `traceparent`/`tracestate` (and baggage) of the current span to outgoing headers."""
    propagate.inject(headers)
    return headers


# --- `traced` state -------------------------------------------------------------------------------


def configure(
    settings: Settings | None = None,
    provider: TracerProvider | None = None,
    *,
    level: TraceLevel | str | None = None,
    debugger: debug.Debugger | None = None,
    capture: debug.SnapshotCapture | None = None,
) -> None:
    """Set what `traced` uses: the provider for spans (None: no spans), the global level (default
    `settings.trace_level`), the debugger (performance summary, snapshots) and where the debugger
    sends error snapshots (`capture`, normally the error tracker's)."""
    if level is None:
        level = settings.trace_level if settings is not None else TraceLevel.PERFORMANCE
    redactor = debug.current().redactor if debugger is None else debugger.redactor
    tracer = LightTracer(provider, "kansoku.traced", redactor=redactor) if provider is not None else None
    configure_traced(tracer if tracer is not None and tracer.enabled else None, level)
    if debugger is not None:
        debug.use(debugger)
    if capture is not None:
        debug.current().capture = capture


def reset() -> None:
    """Back to the unconfigured state: no spans, PERFORMANCE, a fresh default debugger, the API's propagator."""
    configure_traced(None, TraceLevel.PERFORMANCE)
    propagate.set_global_textmap(_API_TEXTMAP)
    debug.use(None)
