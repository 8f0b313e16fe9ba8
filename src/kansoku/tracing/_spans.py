"""Spans made for the hot path: the server span of each request and the spans of `traced` calls.

The SDK's own span costs about 20 microseconds here (a lock and a validation per attribute, a
copy at the end). `LightSpan` is a small implementation of the OpenTelemetry `Span` interface that
keeps attributes in a plain dict while it runs and, when it ends, hands one SDK `ReadableSpan` to
the provider's processors. Everything else stays the SDK's: the sampler, the id generator, the
resource, the batch processor and the exporters; spans made by other instrumentation (httpx,
SQLAlchemy...) are ordinary SDK spans and parent to these as usual. Spans the sampler drops are a
`SpanContext` made current for propagation and nothing more.

Shortcuts keep a span to a few microseconds, each exactly equivalent to the long way: kansoku's
own sampler (`ParentBased(TraceIdRatioBased(rate))` with the default delegates) and the SDK's
random ids are applied inline (any other sampler or id generator is called as usual); the context
is read and set through the SDK's context variable when the runtime context is the default one;
and a processor that subclasses `LightSpanProcessor` (the local store's) receives the `LightSpan`
itself, so a span it does not keep never becomes a `ReadableSpan`.

Processors see these spans as the SDK's: `on_start(span, parent_context)` when a recording span
starts (the span is the `LightSpan`: it takes `set_attribute` and reads like an SDK span, its
request attributes included), `on_end(readable)` when it ends. Processors whose `on_start` does
nothing (the SDK's batch and simple processors, the local store's) are not called at start.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY  # the context key of the current span
from opentelemetry.util import types

from kansoku._version import __version__
from kansoku.logs._frames import format_exception, qualified_name, safe_str, stack_of, walk_chain
from kansoku.redact import Redactor

__all__ = ["LightSpan", "LightSpanProcessor", "LightTracer", "current_context", "record_error", "restore",
           "use_span"]

MAX_ATTRIBUTES: Final = 128
MAX_EVENTS: Final = 128
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_UNSET: Final = Status(StatusCode.UNSET)
_PRIMITIVES: Final = (str, bool, int, float)
_NO_STATE: Final = TraceState()
_ID_LIMIT: Final = TraceIdRatioBased.TRACE_ID_LIMIT
# `on_start` methods that do nothing: processors with one of these are not called at start.
_IDLE_STARTS: Final = frozenset({SpanProcessor.on_start, BatchSpanProcessor.on_start, SimpleSpanProcessor.on_start})
_DEFAULT_DELEGATES: Final = (
    ("_remote_parent_sampled", ALWAYS_ON), ("_remote_parent_not_sampled", ALWAYS_OFF),
    ("_local_parent_sampled", ALWAYS_ON), ("_local_parent_not_sampled", ALWAYS_OFF),
)

# The current OpenTelemetry context without the API's two layers of calls: with the default
# runtime context (one ContextVar, unless OTEL_PYTHON_CONTEXT names another) the variable itself.
_RUNTIME = otel_context._RUNTIME_CONTEXT
if type(_RUNTIME) is ContextVarsRuntimeContext:
    current_context: Callable[[], Context] = _RUNTIME._current_context.get
    _attach: Callable[[Context], Token[Context]] = _RUNTIME._current_context.set
    _detach: Callable[[Token[Context]], None] = _RUNTIME._current_context.reset
else:  # pragma: no cover - another runtime context
    current_context, _attach, _detach = otel_context.get_current, otel_context.attach, _RUNTIME.detach


def use_span(span: trace.Span, context: Context) -> object:
    """Make `span` current in a copy of `context`; returns the token for `restore`."""
    return _attach(Context({**context, _SPAN_KEY: span}))


def restore(token: object) -> None:
    """Undo `use_span` (as `opentelemetry.context.detach`, which logs a token from another context)."""
    try:
        _detach(token)  # type: ignore[arg-type]
    except Exception:
        otel_context.detach(token)  # type: ignore[arg-type]


def _clean(value: Any) -> Any:
    """An attribute value the exporters accept: primitives and sequences of them, else its str."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(item if isinstance(item, _PRIMITIVES) else str(item) for item in value)
    return str(value)


def record_error(span: trace.Span, exc: BaseException, redactor: Redactor, *, set_status: bool = True) -> None:
    """Add a redacted exception event to `span` (OTel's own keeps raw messages) and mark it failed.

    On a `LightSpan` the event's stack trace is written when the span is read (exported, off the
    request path), from the frames the error event and the log line share (`kansoku.logs._frames`).
    """
    kind = type(exc)
    type_name = qualified_name(kind)
    message = redactor.redact_text(safe_str(exc))
    event = ExceptionEvent(type_name, message, exc, redactor)
    if isinstance(span, LightSpan):
        if span.is_recording() and len(span._events) < MAX_EVENTS:
            if not isinstance(span._events, list):
                span._events = []
            span._events.append(event)
    else:
        span.add_event("exception", event.attributes)
    if set_status:
        span.set_attribute("error.type", type_name)
        span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {message}"))


class ExceptionEvent(Event):
    """A span's `exception` event whose `exception.stacktrace` is formatted when first read.

    It keeps the chain's code locations, not the frames: no locals stay alive until the export.
    """

    def __init__(self, type_name: str, message: str, exc: BaseException, redactor: Redactor) -> None:
        super().__init__("exception", None, time.time_ns())
        self._chain: list[tuple[str, str, tuple[tuple[Any, int], ...], int, str]] | None = []
        for item, relation in walk_chain(exc):
            stack = stack_of(item)
            text = message if item is exc else safe_str(item)
            self._chain.append((qualified_name(type(item)), text, stack.locations(), stack.omitted, relation))
        self._type, self._message, self._redactor = type_name, message, redactor

    @property
    def attributes(self) -> types.Attributes:
        if self._chain is not None:
            stack = "".join(self._redactor.redact_text(line) for line in
                            format_exception(self._chain).splitlines(keepends=True))
            self._attributes = {"exception.type": self._type, "exception.message": self._message,
                                "exception.stacktrace": stack}
            self._chain = None
        return self._attributes


class LightSpan(trace.Span):
    """A span whose attributes live in a dict until it ends; also the handle of `RequestTracer`."""

    # Defaults on the class: fewer assignments per span (instances set them when they change).
    _status: Status = _UNSET
    _end: int | None = None
    _trace_id: str | None = None
    _span_id: str | None = None
    _events: tuple[Event, ...] | list[Event] = ()  # a list from the first event on
    # Set by RequestTracer, made into attributes only when the span is handed on (`readable()`):
    # (function making the request's attributes, its arguments...), and (status, route).
    _request: tuple[Any, ...] | None = None
    _response: tuple[int, str | None] | None = None
    token: object = None  # RequestTracer's context token

    def __init__(
        self,
        tracer: LightTracer,
        name: str,
        kind: SpanKind,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any] | None,
        sampled: bool,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._context = context
        self._parent = parent
        self._attributes = attributes  # None: not recording
        self._start = time.time_ns()
        self.sampled = sampled  # the sampled flag: exported (recording spans need not be, in general)

    @property
    def trace_id(self) -> str:
        """The trace id as 32 hex digits."""
        if self._trace_id is None:
            self._trace_id = format(self._context.trace_id, "032x")
        return self._trace_id

    @property
    def span_id(self) -> str:
        """The span id as 16 hex digits."""
        if self._span_id is None:
            self._span_id = format(self._context.span_id, "016x")
        return self._span_id

    def get_span_context(self) -> SpanContext:
        return self._context

    # What processors read of an SDK span at start (`on_start`), computed only when read.
    @property
    def name(self) -> str:
        """The span's name so far."""
        return self._name

    @property
    def kind(self) -> SpanKind:
        """SERVER, INTERNAL..."""
        return self._kind

    @property
    def context(self) -> SpanContext:
        """The span's own context (ids, flags, state)."""
        return self._context

    @property
    def parent(self) -> SpanContext | None:
        """The parent span's context, if any."""
        return self._parent

    @property
    def start_time(self) -> int:
        """Start, in nanoseconds since the epoch."""
        return self._start

    @property
    def end_time(self) -> int | None:
        """End, in nanoseconds since the epoch; None while it runs."""
        return self._end

    @property
    def resource(self) -> Any:
        """The provider's resource."""
        return self._tracer.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        """kansoku's scope."""
        return self._tracer.scope

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The attributes so far (a server span's request attributes included)."""
        attributes = self._attributes or {}
        if self._request is not None:
            make, *arguments = self._request
            return {**make(*arguments), **attributes}
        return dict(attributes)

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
            if not isinstance(self._events, list):
                self._events = []
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
            self._tracer.export(self)

    def readable(self) -> ReadableSpan:
        """The finished span as the SDK's `ReadableSpan`, for processors and exporters."""
        name, attributes = self._name, self._attributes or {}
        if self._request is not None:  # a server span: its request's attributes first, as if set at start
            make, *arguments = self._request
            attributes = {**make(*arguments), **attributes}
        if self._response is not None:
            status, route = self._response
            if status:
                attributes["http.response.status_code"] = status
            if route:
                attributes["http.route"] = route
                name = f"{name} {route}"
        return ReadableSpan(
            name=name,
            context=self._context,
            parent=self._parent,
            resource=self._tracer.resource,
            attributes=attributes,
            events=self._events,
            kind=self._kind,
            status=self._status,
            start_time=self._start,
            end_time=self._end,
            instrumentation_scope=self._tracer.scope,
        )


class LightSpanProcessor(SpanProcessor):
    """A span processor that takes a finished `LightSpan` as it is (`on_end_light`), so that it can
    decide whether the span is worth a `ReadableSpan` at all; SDK spans still come to `on_end`."""

    def on_end_light(self, span: LightSpan) -> None:
        """A recording `LightSpan` ended (by default: `on_end(span.readable())` if it is sampled)."""
        if span.sampled:
            self.on_end(span.readable())


class LightTracer:
    """Starts `LightSpan`s with the provider's sampler and ids, and exports them to its processors."""

    def __init__(self, provider: TracerProvider, name: str, *, redactor: Redactor | None = None) -> None:
        tracer = provider.get_tracer(name, __version__)
        # Absent when the SDK is disabled (OTEL_SDK_DISABLED): then `enabled` is false.
        self._processor: SpanProcessor | None = getattr(tracer, "span_processor", None)
        self._sampler = provider.sampler
        self._bound = _ratio_bound(provider.sampler)
        self._ids = provider.id_generator
        self._random_ids = type(provider.id_generator) is RandomIdGenerator
        self.resource = provider.resource
        self.scope = InstrumentationScope(name, __version__)
        self.redactor = redactor or Redactor()
        self._seen: object = None  # the provider's processors when `_sinks` was made
        self._sinks: tuple[tuple[Any, SpanProcessor], ...] = ()
        self._starting: tuple[SpanProcessor, ...] = ()  # the processors with an on_start of use
        self._only: Callable[[LightSpan], None] | None = None  # the one processor, when it takes LightSpans

    @property
    def enabled(self) -> bool:
        """Whether spans can be made at all."""
        return self._processor is not None

    def start_span(self, name: str, kind: SpanKind, parent_context: Context | None = None, *,
                   request: tuple[Any, ...] | None = None) -> LightSpan:
        """A new span, child of the span in `parent_context` (default: the current one); not made current.

        `request` is a server span's (function making its request attributes, its arguments...),
        made into attributes only when read (`attributes`, `readable()`).
        """
        context = current_context() if parent_context is None else parent_context
        span = self._new_span(name, kind, context)
        if span._attributes is not None:
            span._request = request
            starters = self._starters()
            if starters:
                for processor in starters:
                    processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    def _new_span(self, name: str, kind: SpanKind, context: Context) -> LightSpan:
        parent: SpanContext | None = None
        if context.get(_SPAN_KEY) is not None:
            parent = trace.get_current_span(context).get_span_context()
            if not parent.is_valid:
                parent = None
        if parent is not None:
            trace_id = parent.trace_id
        else:
            trace_id = (self._random_ids and random.getrandbits(128)) or self._ids.generate_trace_id()
        span_id = (self._random_ids and random.getrandbits(64)) or self._ids.generate_span_id()
        bound = self._bound
        if bound is not None:  # kansoku's sampler, decided inline exactly as the SDK would
            if parent is None:
                sampled, state = trace_id & _ID_LIMIT < bound, _NO_STATE
            else:
                sampled, state = parent.trace_flags.sampled, parent.trace_state
            flags = _SAMPLED if sampled else _NOT_SAMPLED
            if _TUPLE_LAYOUT:  # the SDK's constructor only adds `is_valid` (true here) to the tuple
                span_context = tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state, True))
            else:  # pragma: no cover - another SDK layout
                span_context = SpanContext(trace_id, span_id, False, flags, state)
            return LightSpan(self, name, kind, span_context, parent, {} if sampled else None, sampled)
        result = self._sampler.should_sample(context, trace_id, name, kind)
        sampled = result.decision is Decision.RECORD_AND_SAMPLE
        flags = _SAMPLED if sampled else _NOT_SAMPLED
        span_context = SpanContext(trace_id, span_id, False, flags, result.trace_state)
        attributes = None
        if result.decision is not Decision.DROP:
            attributes = dict(result.attributes) if result.attributes else {}
        return LightSpan(self, name, kind, span_context, parent, attributes, sampled)

    def _starters(self) -> tuple[SpanProcessor, ...]:
        """The processors to call at start: those whose `on_start` does something."""
        processor = self._processor
        if type(processor) is not SynchronousMultiSpanProcessor:
            return (processor,) if processor is not None else ()
        if processor._span_processors is not self._seen:
            self._refresh(processor._span_processors)
        return self._starting

    def _refresh(self, processors: tuple[SpanProcessor, ...]) -> None:
        """Re-read the provider's processors (a new tuple whenever one is added)."""
        self._sinks = tuple((getattr(p, "on_end_light", None), p) for p in processors)
        self._starting = tuple(p for p in processors if type(p).on_start not in _IDLE_STARTS)
        self._seen = processors
        self._only = self._sinks[0][0] if len(self._sinks) == 1 else None

    def export(self, span: LightSpan) -> None:
        """Hand a finished span to the provider's processors (a `ReadableSpan` made once, if needed)."""
        processor = self._processor
        if processor is None:
            return
        if type(processor) is not SynchronousMultiSpanProcessor:  # e.g. the concurrent one: its own way
            processor.on_end(span.readable())
            return
        processors = processor._span_processors
        if processors is not self._seen:  # a new tuple whenever a processor is added
            self._refresh(processors)
        if self._only is not None:  # the usual case: the local store alone
            self._only(span)
            return
        readable = None
        for light, sink in self._sinks:
            if light is not None:
                light(span)
            else:
                if readable is None:
                    readable = span.readable()
                sink.on_end(readable)


def _ratio_bound(sampler: Sampler) -> int | None:
    """The ratio sampler's bound when `sampler` is exactly kansoku's default, else None."""
    root = getattr(sampler, "_root", None)
    if type(sampler) is not ParentBased or type(root) is not TraceIdRatioBased:
        return None
    if any(getattr(sampler, name, None) is not default for name, default in _DEFAULT_DELEGATES):
        return None
    return root.bound


# SpanContext is a tuple whose constructor checks the ids and appends `is_valid`: checked once here.
_TUPLE_LAYOUT: Final = tuple(SpanContext(1, 2, False, _SAMPLED, _NO_STATE)) == (1, 2, False, _SAMPLED,
                                                                                 _NO_STATE, True)
