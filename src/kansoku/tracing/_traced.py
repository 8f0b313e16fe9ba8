"""`traced` and the chapter's trace levels (re-exported by `kansoku.tracing`).

| level | what a call of a traced function records |
|---|---|
| DISABLED | nothing: the function is called as it is |
| ERROR_ONLY | no span; on error a snapshot (frames, arguments, memory, thread) |
| PERFORMANCE | a span and the duration in the performance summary; the snapshot on error |
| DETAILED | plus the arguments as span attributes, redacted and bounded |
| VERBOSE | plus the locals of each in-app frame in the snapshot, redacted and bounded |

The global level (`KANSOKU_TRACE_LEVEL`, read at call time; `kansoku.tracing.configure`) is a
ceiling: a call records at the function's own level (`traced(level=...)`) when that is lower, else
at the global one. So `ERROR_ONLY` in production turns capture down everywhere, functions marked
VERBOSE included, and a hot function can be marked lower than the rest. Spans need a configured
tracer; without one, calls still feed the performance summary and take snapshots. The innermost
traced function that sees an exception takes its snapshot; the outer ones only mark their spans as
failed.
"""

from __future__ import annotations

import enum
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from kansoku import debug
from kansoku._delegate import wrap
from kansoku._safety import suppress_internal_errors
from kansoku.debug._snapshot import build_snapshot
from kansoku.tracing._spans import LightSpan, LightTracer, record_error

__all__ = ["TraceLevel", "argument_attributes", "configure_traced", "traced"]

F = TypeVar("F", bound=Callable[..., Any])
MAX_ARGUMENTS: Final = 32
MAX_ATTRIBUTE_LENGTH: Final = 1024


class TraceLevel(enum.IntEnum):
    """How much a traced call records (the chapter's five levels)."""

    DISABLED = 0
    ERROR_ONLY = 1
    PERFORMANCE = 2
    DETAILED = 3
    VERBOSE = 4

    @classmethod
    def parse(cls, value: TraceLevel | str | int) -> TraceLevel:
        """A level from its name (any case), number or itself."""
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"unknown trace level {value!r}; use one of {', '.join(cls.__members__)}") from None
        if isinstance(value, int):
            return cls(value)
        raise TypeError(f"a trace level is a TraceLevel, a name or a number, not {type(value).__name__}; "
                        "did you write @traced instead of @traced()?")


class _State:
    tracer: LightTracer | None = None
    level: TraceLevel = TraceLevel.PERFORMANCE


_STATE = _State()


def configure_traced(tracer: LightTracer | None, level: TraceLevel | str) -> None:
    """Set the tracer for spans (None: no spans) and the global level of traced functions."""
    _STATE.tracer = tracer
    _STATE.level = TraceLevel.parse(level)


class _Spec:
    """What is fixed per decorated function."""

    __slots__ = ("attributes", "func", "in_summary", "level", "name", "signature")

    def __init__(self, func: Callable[..., Any], name: str | None, level: TraceLevel | None) -> None:
        self.func = func
        self.name = name or f"{func.__module__}.{func.__qualname__}"
        self.level = level
        self.attributes = {"code.function": func.__qualname__, "code.namespace": func.__module__}
        self.signature: inspect.Signature | None = None
        self.in_summary = not getattr(func, debug.SUMMARY_ATTR, False)  # else a `timed` inside counts it

    def arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name (positional names when binding fails)."""
        try:
            if self.signature is None:
                self.signature = inspect.signature(self.func)
            return dict(self.signature.bind_partial(*args, **kwargs).arguments)
        except (TypeError, ValueError):  # a wrong call: the function itself will say so
            return {**{f"arg{i}": value for i, value in enumerate(args)}, **kwargs}


class _Call:
    """One call of a traced function: its span, its clock, and what it does on error."""

    __slots__ = ("args", "kwargs", "level", "span", "spec", "start")

    def __init__(self, spec: _Spec, level: TraceLevel, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.spec = spec
        self.level = level
        self.args = args
        self.kwargs = kwargs
        self.span: LightSpan | None = None
        tracer = _STATE.tracer
        if tracer is not None and level >= TraceLevel.PERFORMANCE:
            try:
                self.span = self._start_span(tracer)
            except Exception as exc:
                _internal_error("traced.start", exc)
        self.start = time.perf_counter()

    def _start_span(self, tracer: LightTracer) -> LightSpan:
        span = tracer.start_span(self.spec.name, SpanKind.INTERNAL)
        attributes = span._attributes
        if attributes is not None:  # only for spans the sampler keeps; these values are already clean
            attributes.update(self.spec.attributes)
            if self.level >= TraceLevel.DETAILED:
                attributes.update(self._argument_attributes())
        return span

    def _argument_attributes(self) -> dict[str, Any]:
        return argument_attributes(debug.current().redactor.redact(self.spec.arguments(self.args, self.kwargs)))

    def resume(self) -> object:
        if self.span is None:
            return None
        return otel_context.attach(trace.set_span_in_context(self.span))

    def suspend(self, token: object) -> None:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    def done(self, exc: BaseException | None) -> None:
        try:
            if self.level >= TraceLevel.PERFORMANCE and self.spec.in_summary:
                debug.record(self.spec.name, time.perf_counter() - self.start)
            if isinstance(exc, Exception):
                self._failed(exc)
            if self.span is not None:
                self.span.end()
        except Exception as error:  # kansoku's own failure: never instead of the user's result
            _internal_error("traced.finish", error)

    def _failed(self, exc: Exception) -> None:
        debugger = debug.current()
        if not hasattr(exc, debug.SNAPSHOT_ATTR):  # the innermost traced function takes it
            snapshot = build_snapshot(
                exc,
                function=self.spec.name,
                level=self.level.name,
                redactor=debugger.redactor,
                arguments=self.spec.arguments(self.args, self.kwargs),
                with_locals=self.level >= TraceLevel.VERBOSE,
                clock=debugger.clock,
            )
            debugger.report_snapshot(exc, snapshot)
        if self.span is not None:
            record_error(self.span, exc, debugger.redactor)


def _internal_error(where: str, exc: Exception) -> None:
    """Report (or, in strict mode, raise) an internal error without a context manager on the hot path."""
    with suppress_internal_errors(where):
        raise exc


def argument_attributes(redacted: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes `kansoku.args.<name>` of a call's (already redacted) arguments, bounded."""
    out: dict[str, Any] = {}
    for name, value in list(redacted.items())[:MAX_ARGUMENTS]:
        if name not in ("self", "cls"):
            out[f"kansoku.args.{name}"] = _attribute_value(value)
    return out


def _attribute_value(value: Any) -> str | bool | int | float:
    """An OpenTelemetry attribute value: primitives as they are, anything else as bounded JSON."""
    if isinstance(value, str):
        return value[:MAX_ATTRIBUTE_LENGTH]
    if isinstance(value, bool | int | float):
        return value
    return orjson.dumps(value, default=str).decode()[:MAX_ATTRIBUTE_LENGTH]


def traced(level: TraceLevel | str | None = None, name: str | None = None) -> Callable[[F], F]:
    """Trace a function, coroutine function, generator or async generator function.

    `level` is the most this function records; the global level caps it. `name` the span and summary name
    (default `module.qualname`). Results, exceptions and laziness are unchanged: a generator's
    span starts at its first item and covers the whole iteration.
    """
    fixed = TraceLevel.parse(level) if level is not None else None

    def decorator(func: F) -> F:
        spec = _Spec(func, name, fixed)

        def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call | None:
            ceiling = _STATE.level
            current = spec.level if spec.level is not None and spec.level < ceiling else ceiling
            if current is TraceLevel.DISABLED:
                return None
            return _Call(spec, current, args, kwargs)

        wrapper = wrap(func, begin)
        setattr(wrapper, debug.SUMMARY_ATTR, True)
        return wrapper

    return decorator
