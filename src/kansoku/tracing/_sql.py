"""SQL query spans for SQLAlchemy engines, however they were made, and never for kansoku's own store.

The official instrumentation (`opentelemetry-instrumentation-sqlalchemy`) patches
`sqlalchemy.create_engine` and `Engine.connect`: an engine made with a `create_engine` imported
before `instrument()` gets only `connect` spans, and every engine, kansoku's store included, makes a
root `connect` span per checkout. kansoku listens to SQLAlchemy's cursor events instead:

- `instrument_sqlalchemy=true` listens on the `Engine` class, which SQLAlchemy applies to every
  engine, those made before included (an `AsyncEngine` runs on one);
- `instrument_engine(engine)` listens on one engine, with the setting on or off.

A connection whose execution options carry `kansoku_untraced=True` makes no span: the store's
engine is created with it (`kansoku.store.create_store_engine`), and an app can set it on a
connection of its own. Nothing is traced either where OpenTelemetry instrumentation is suppressed
(the SDK's exporters, kansoku's alert delivery: `untraced()`).

Spans follow the stable database conventions: `db.system.name`, `db.namespace`,
`db.operation.name`, `server.address`/`server.port`, and `db.query.text` with its literals replaced
by `?` (the conventions' sanitisation) and then redacted.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import Engine, event

from kansoku._version import __version__
from kansoku.redact import Redactor
from kansoku.store import UNTRACED_OPTION

__all__ = ["SqlTracer", "instrument_engine", "sanitize_sql", "start_sql_tracing", "stop_sql_tracing", "untraced"]

_SUPPRESS: Final = otel_context._SUPPRESS_INSTRUMENTATION_KEY  # the key the SDK and instrumentors read
_SPAN: Final = "_kansoku_span"
_STRING: Final = re.compile(r"'(?:[^']|'')*'")
_NUMBER: Final = re.compile(r"(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_FIRST_WORD: Final = re.compile(r"\s*(?:/\*.*?\*/\s*)*(\w+)", re.DOTALL)
_SYSTEMS: Final = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql", "mariadb": "mariadb",
                   "mssql": "microsoft.sql_server", "oracle": "oracle.db"}
_MAX_QUERY: Final = 2048

_requested: weakref.WeakSet[Engine] = weakref.WeakSet()  # instrument_engine() engines
_active: list[SqlTracer] = []  # the tracer of the runtime (one at a time)


@contextmanager
def untraced() -> Iterator[None]:
    """No instrumentation inside the block: kansoku's own HTTP calls (alerts) make no spans."""
    token = otel_context.attach(otel_context.set_value(_SUPPRESS, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def sanitize_sql(statement: str) -> str:
    """The query with its string and number literals replaced by `?` (parameters already are)."""
    return _NUMBER.sub("?", _STRING.sub("?", statement))


def operation_of(statement: str) -> str | None:
    """The statement's first keyword, upper case (`SELECT`), after any leading comments."""
    match = _FIRST_WORD.match(statement)
    return match.group(1).upper() if match else None


class SqlTracer:
    """Starts and ends a CLIENT span around each cursor execution of the engines it listens to."""

    def __init__(self, provider: TracerProvider, redactor: Redactor | None = None) -> None:
        self._tracer = provider.get_tracer("kansoku.sqlalchemy", __version__)
        self._redactor = redactor or Redactor()
        self._targets: list[Any] = []

    def listen(self, target: Any) -> None:
        """Trace `target`: an `Engine`, an `AsyncEngine` (its sync engine) or the `Engine` class."""
        target = getattr(target, "sync_engine", target)
        if any(known is target for known in self._targets):
            return
        event.listen(target, "before_cursor_execute", self._before)
        event.listen(target, "after_cursor_execute", self._after)
        event.listen(target, "handle_error", self._error)
        self._targets.append(target)

    def close(self) -> None:
        """Stop listening everywhere."""
        while self._targets:
            target = self._targets.pop()
            event.remove(target, "before_cursor_execute", self._before)
            event.remove(target, "after_cursor_execute", self._after)
            event.remove(target, "handle_error", self._error)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if (context is None or getattr(context, _SPAN, None) is not None
                or conn.get_execution_options().get(UNTRACED_OPTION)
                or otel_context.get_value(_SUPPRESS)):
            return
        url = conn.engine.url
        system = _SYSTEMS.get(conn.dialect.name, conn.dialect.name)
        operation = operation_of(statement)
        namespace = url.database if system != "sqlite" else (url.database or ":memory:").rsplit("/", 1)[-1]
        name = " ".join(part for part in (operation, namespace) if part) or system
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT)
        if span.is_recording():
            attributes: dict[str, Any] = {"db.system.name": system, "db.query.text": self._query_text(statement)}
            if namespace:
                attributes["db.namespace"] = namespace
            if operation:
                attributes["db.operation.name"] = operation
            if url.host:
                attributes["server.address"] = url.host
                if url.port:
                    attributes["server.port"] = url.port
            if executemany:
                attributes["db.operation.batch.size"] = len(parameters) if hasattr(parameters, "__len__") else 0
            span.set_attributes(attributes)
        setattr(context, _SPAN, span)

    def _query_text(self, statement: str) -> str:
        return self._redactor.redact_text(sanitize_sql(statement)[:_MAX_QUERY])

    @staticmethod
    def _after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        span = getattr(context, _SPAN, None)
        if span is not None:
            setattr(context, _SPAN, False)  # ended: a second listener must not start another
            span.end()

    @staticmethod
    def _error(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, _SPAN, None)
        if not span:
            return
        error = exception_context.original_exception
        if span.is_recording():
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
        setattr(exception_context.execution_context, _SPAN, False)
        span.end()


def start_sql_tracing(provider: TracerProvider, redactor: Redactor | None, *, every_engine: bool) -> SqlTracer:
    """The runtime's SQL tracer: every engine (`every_engine`) or only the requested ones."""
    stop_sql_tracing()
    tracer = SqlTracer(provider, redactor)
    if every_engine:
        tracer.listen(Engine)
    for engine in list(_requested):
        tracer.listen(engine)
    _active.append(tracer)
    return tracer


def stop_sql_tracing() -> None:
    """Remove the runtime's SQL tracer's listeners."""
    while _active:
        _active.pop().close()


def instrument_engine(engine: Any) -> Any:
    """Make SQL query spans for `engine` (an `Engine` or an `AsyncEngine`); returns it.

    For engines that `instrument_sqlalchemy` does not cover because it is off. Safe to call before
    `kansoku.instrument()`: the engine is traced from the moment tracing is configured.
    """
    _requested.add(getattr(engine, "sync_engine", engine))
    for tracer in _active:
        tracer.listen(engine)
    return engine

