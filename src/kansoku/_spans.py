"""Spans made for the hot path: the server span of each request and the spans of `traced` calls.

The SDK's own span costs about 20 microseconds here (a lock and a validation per attribute, a
copy at the end). `LightSpan` is a small implementation of the OpenTelemetry `Span` interface that
keeps attributes in a plain dict while it runs and, when it ends, hands one SDK `ReadableSpan` to
the provider's processors. Everything else stays the SDK's: the sampler, the id generator, the
resource, the batch processor and the exporters; spans made by other instrumentation (httpx,
SQLAlchemy...) are ordinary SDK spans and parent to these as usual. Spans the sampler drops are a
`SpanContext` made current for propagation and nothing more.

Processors see these spans only at their end (`on_end`); `on_start` is not called for them.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util import types

from kansoku import __version__
from kansoku._snapshot import safe_str
from kansoku.redact import Redactor
from kansoku.settings import Settings
from kansoku.typing import Scope

__all__ = ["LightSpan", "LightTracer", "RequestTracer", "record_error"]

MAX_ATTRIBUTES: Final = 128
MAX_EVENTS: Final = 128
MAX_STACK_FRAMES: Final = 50
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
                             "QUERY"})
_UNSET: Final = Status(StatusCode.UNSET)
_PRIMITIVES: Final = (str, bool, int, float)


def _clean(value: Any) -> Any:
    """An attribute value the exporters accept: primitives and sequences of them, else its str."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(item if isinstance(item, _PRIMITIVES) else str(item) for item in value)
    return str(value)


def record_error(span: trace.Span, exc: BaseException, redactor: Redactor, *, set_status: bool = True) -> None:
    """Add a redacted exception event to `span` (OTel's own keeps raw messages) and mark it failed."""
    kind = type(exc)
    type_name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    message = redactor.redact_text(safe_str(exc))
    stack = traceback.format_exception(kind, exc, exc.__traceback__, limit=-MAX_STACK_FRAMES)
    span.add_event("exception", {
        "exception.type": type_name,
        "exception.message": message,
        "exception.stacktrace": "".join(redactor.redact_text(line) for line in stack),
    })
    if set_status:
        span.set_attribute("error.type", type_name)
        span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {message}"))


class LightSpan(trace.Span):
    """A span whose attributes live in a dict until it ends; also the handle of `RequestTracer`."""

    def __init__(
        self,
        tracer: LightTracer,
        name: str,
        kind: SpanKind,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any] | None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._context = context
        self._parent = parent
        self._attributes = attributes  # None: not recording
        self._events: list[Event] = []
        self._status = _UNSET
        self._start = time.time_ns()
        self._end: int | None = None
        self._trace_id: str | None = None
        self.token: object = None

    @property
    def trace_id(self) -> str:
        """The trace id as 32 hex digits."""
        if self._trace_id is None:
            self._trace_id = format(self._context.trace_id, "032x")
        return self._trace_id

    @property
    def span_id(self) -> str:
        """The span id as 16 hex digits."""
        return format(self._context.span_id, "016x")

    @property
    def sampled(self) -> bool:
        """Whether the sampler kept this span."""
        return self._attributes is not None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._attributes is not None and self._end is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        attributes = self._attributes
        if (attributes is not None and self._end is None and value is not None
                and (len(attributes) < MAX_ATTRIBUTES or key in attributes)):
            attributes[key] = _clean(value)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.is_recording() and len(self._events) < MAX_EVENTS:
            cleaned = {k: _clean(v) for k, v in (attributes or {}).items() if v is not None}
            self._events.append(Event(name, cleaned, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Links are not kept on these spans (they belong at span creation)."""

    def update_name(self, name: str) -> None:
        if self.is_recording():
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if not self.is_recording() or self._status.status_code is StatusCode.OK:
            return  # OK is final, as in the SDK
        new = status if isinstance(status, Status) else Status(status, description)
        if new.status_code is not StatusCode.UNSET:
            self._status = new

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        if self.is_recording():
            record_error(self, exception, self._tracer.redactor, set_status=False)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time or time.time_ns()
        if self._attributes is not None:
            self._tracer.export(ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=self._tracer.resource,
                attributes=self._attributes,
                events=self._events,
                kind=self._kind,
                status=self._status,
                start_time=self._start,
                end_time=self._end,
                instrumentation_scope=self._tracer.scope,
            ))


class LightTracer:
    """Starts `LightSpan`s with the provider's sampler and ids, and exports them to its processors."""

    def __init__(self, provider: TracerProvider, name: str, *, redactor: Redactor | None = None) -> None:
        tracer = provider.get_tracer(name, __version__)
        # Absent when the SDK is disabled (OTEL_SDK_DISABLED): then `enabled` is false.
        self._processor = getattr(tracer, "span_processor", None)
        self._sampler = provider.sampler
        self._ids = provider.id_generator
        self.resource = provider.resource
        self.scope = InstrumentationScope(name, __version__)
        self.redactor = redactor or Redactor()

    @property
    def enabled(self) -> bool:
        """Whether spans can be made at all."""
        return self._processor is not None

    def start_span(self, name: str, kind: SpanKind, parent_context: Context | None = None) -> LightSpan:
        """A new span, child of the span in `parent_context` (default: the current one); not made current."""
        parent: SpanContext | None = trace.get_current_span(parent_context).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
        else:
            parent, trace_id = None, self._ids.generate_trace_id()
        result = self._sampler.should_sample(parent_context, trace_id, name, kind)
        span_context = SpanContext(
            trace_id, self._ids.generate_span_id(), is_remote=False,
            trace_flags=_SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else _NOT_SAMPLED,
            trace_state=result.trace_state,
        )
        attributes = None
        if result.decision is not Decision.DROP:
            attributes = dict(result.attributes) if result.attributes else {}
        return LightSpan(self, name, kind, span_context, parent, attributes)

    def export(self, span: ReadableSpan) -> None:
        """Hand a finished span to the provider's processors."""
        if self._processor is not None:
            self._processor.on_end(span)


class RequestTracer:
    """Starts and finishes the server span of each request (used by kansoku's middleware).

    `start(scope)` continues the W3C `traceparent`/`tracestate` of the request, asks the
    provider's sampler, and makes the span current; `finish(...)` adds the route, the status and
    the error, ends the span and restores the context. Both run in the request's task.
    """

    def __init__(
        self, provider: TracerProvider, settings: Settings | None = None, *, redactor: Redactor | None = None
    ) -> None:
        if redactor is None and settings is not None:
            redactor = Redactor(settings.redact_keys, allow_pii=settings.allow_pii,
                                max_string=settings.max_string_length)
        self._tracer = LightTracer(provider, "kansoku", redactor=redactor)
        self.redactor = self._tracer.redactor
        self._propagator = TraceContextTextMapPropagator()

    def start(self, scope: Scope) -> LightSpan | None:
        """Start the request's span and make it current; None when tracing is off."""
        if self._tracer._processor is None:  # the SDK is disabled
            return None
        traceparent = tracestate = host = agent = None
        for key, value in scope.get("headers") or ():
            if key == b"traceparent":
                traceparent = value
            elif key == b"tracestate":
                tracestate = value
            elif key == b"host":
                host = value
            elif key == b"user-agent":
                agent = value
        if traceparent is not None:
            carrier = {"traceparent": traceparent.decode("latin-1")}
            if tracestate is not None:
                carrier["tracestate"] = tracestate.decode("latin-1")
            parent_context = self._propagator.extract(carrier)
        else:
            parent_context = otel_context.get_current()
        method = str(scope.get("method", "GET"))
        span = self._tracer.start_span(method if method in _METHODS else "HTTP", SpanKind.SERVER, parent_context)
        if span._attributes is not None:
            span._attributes.update(_request_attributes(scope, method, host, agent))
        span.token = otel_context.attach(trace.set_span_in_context(span, parent_context))
        return span

    def finish(
        self, handle: LightSpan | None, status: int, route: str | None, exc: BaseException | None
    ) -> None:
        """Record the route, status and error of the request, end its span, restore the context."""
        if handle is None:
            return
        try:
            if handle.is_recording():
                self._complete(handle, status, route, exc)
            handle.end()
        finally:
            otel_context.detach(handle.token)  # type: ignore[arg-type]

    def _complete(self, span: LightSpan, status: int, route: str | None, exc: BaseException | None) -> None:
        attributes = span._attributes
        assert attributes is not None
        if status:
            attributes["http.response.status_code"] = status
        if route:
            attributes["http.route"] = route
            span._name = f"{span._name} {route}"
        if isinstance(exc, Exception):
            record_error(span, exc, self.redactor)
        elif status >= 500:
            attributes["error.type"] = str(status)
            span.set_status(Status(StatusCode.ERROR))


def _request_attributes(scope: Scope, method: str, host: bytes | None, agent: bytes | None) -> dict[str, Any]:
    """The HTTP server semantic conventions known when the request starts."""
    attributes: dict[str, Any] = {
        "http.request.method": method if method in _METHODS else "_OTHER",
        "url.path": scope.get("path", ""),
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if method not in _METHODS:
        attributes["http.request.method_original"] = method
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    if host is not None:
        address, port = _split_host(host.decode("latin-1"))
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    elif scope.get("server"):
        attributes["server.address"], attributes["server.port"] = scope["server"][0], scope["server"][1]
    if agent is not None:
        attributes["user_agent.original"] = agent.decode("latin-1")
    return attributes


def _split_host(value: str) -> tuple[str, int | None]:
    """A Host header's address and port: `example.com:8080`, `[::1]:8080`, `example.com`."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        address, rest = value[1:end], value[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        address, _, port = value.partition(":")
    return address, int(port) if port.isdigit() else None
