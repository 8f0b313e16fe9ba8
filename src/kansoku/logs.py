"""Structured logging (chapter 8.1) on structlog and orjson.

The pipeline is a list of plain processors, shared by every logger that `get_logger` returns and by
the bridge that carries the standard library's `logging` records (uvicorn, SQLAlchemy, httpx...)
through the same steps:

    stamp and redact (level, time, service, context; done while the event dict is built)
    -> hooks (trace ids, breadcrumbs, error capture)
    -> exception to redacted data -> render (one JSON object per line, or console)

`configure_logging(settings)` swaps the steps in place, so loggers created at import time, before
`instrument()`, follow the configuration made later.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, ParamSpec, TypeVar, cast

import orjson
import structlog
from structlog import BoundLoggerBase

from kansoku._logfiles import FileSinks, LineWriter
from kansoku.context import _CONTEXT, get_context
from kansoku.redact import Redactor
from kansoku.settings import Settings
from kansoku.typing import EventDict, LogProcessor

__all__ = [
    "CATEGORIES",
    "LEVELS",
    "KansokuLogger",
    "configure_logging",
    "exception_data",
    "flush",
    "get_logger",
    "log_database_operation",
    "log_execution_time",
]

TRACE: Final = 5
LEVELS: Final = {"trace": TRACE, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_LEVEL_OF_METHOD: Final = {**LEVELS, "exception": 40, "warn": 30, "fatal": 50}
CATEGORIES: Final = (
    "application", "security", "performance", "audit", "business", "system", "database", "api",
    "authentication", "error",
)
_ERROR_METHODS: Final = frozenset({"error", "critical", "exception", "fatal"})
_EXC_FRAMES_LIMIT: Final = 50
logging.addLevelName(TRACE, "TRACE")


class _State:
    """The configuration every logger reads at call time (one instance, mutated in place)."""

    def __init__(self) -> None:
        self.min_level = LEVELS["info"]
        self.slow_ms = 1000.0
        self.static: dict[str, Any] = {"service": "kansoku-app", "environment": "development"}
        self.processors: list[LogProcessor] = []
        self.output = _Output()
        self.redactor = Redactor()
        # The last bound context seen, with the redactor and its redacted view: contexts are
        # copied on write, so one identity check finds a request's context again.
        self.last_context: tuple[Any, Any, Any] = (None, None, None)
        self.hooks: list[LogProcessor] = []  # run first (trace ids, breadcrumbs, error capture)


_STDOUT = LineWriter(lambda data: _emitter(sys.stdout)(data))
atexit.register(_STDOUT.flush)


def flush() -> None:
    """Write out every queued log line (stdout and files); call before reading them back."""
    _STATE.output.flush()


class _Output:
    """The wrapped logger: writes a rendered line to the stream and hands it to the file sinks."""

    def __init__(self, stream: Any = None) -> None:
        self.files: FileSinks | None = None
        self.stream = stream
        # JSON lines to stdout and no files (set by configure_logging): loggers queue lines directly.
        self.direct = False

    @property
    def stream(self) -> Any:
        """The text or binary stream lines go to; None means whatever sys.stdout is at the time."""
        return self._stream

    @stream.setter
    def stream(self, stream: Any) -> None:
        # A stream given explicitly (tests, benchmarks of the synchronous path) is written at once;
        # stdout, the production case, is written by a flusher thread: no I/O on the request path.
        self._stream = stream
        self._emit = _emitter(stream) if stream is not None else _STDOUT.write
        self.direct = False

    def write(self, line: bytes | str, level: int) -> None:
        """Write one rendered line (JSON bytes or console text) at `level` (a number)."""
        data = line if line.__class__ is bytes else str(line).encode("utf-8", "replace")
        self._emit(data + b"\n")
        if self.files is not None:
            self.files.write(data, level)

    def flush(self) -> None:
        """Write out lines still queued for stdout and the files."""
        _STDOUT.flush()
        if self.files is not None:
            self.files.flush()

    def trace(self, line: bytes | str) -> None:
        self.write(line, TRACE)

    def debug(self, line: bytes | str) -> None:
        self.write(line, 10)

    def info(self, line: bytes | str) -> None:
        self.write(line, 20)

    def warning(self, line: bytes | str) -> None:
        self.write(line, 30)

    def error(self, line: bytes | str) -> None:
        self.write(line, 40)

    def critical(self, line: bytes | str) -> None:
        self.write(line, 50)

    exception = error


_STATE = _State()
_time = time.time

def _emitter(stream: Any) -> Callable[[bytes], None]:
    """A function writing one line (bytes) to `stream` and flushing it, chosen once per stream."""
    target = getattr(stream, "buffer", None)
    if target is None and "b" in str(getattr(stream, "mode", "")):
        target = stream
    if target is not None:
        write, flush = target.write, target.flush

        def emit_bytes(data: bytes) -> None:
            write(data)
            flush()

        return emit_bytes

    def emit_text(data: bytes) -> None:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()

    return emit_text


# --- processors -------------------------------------------------------------------------------

_clock: list[Any] = [-1, ""]  # the second last formatted, and its text up to the second
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))


def _timestamp(now: float) -> str:
    """ISO-8601 UTC with milliseconds; the part up to the second is formatted once per second."""
    second = int(now)
    if second != _clock[0]:
        _clock[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_clock[1]}{_MILLIS[int((now - second) * 1000) % 1000]}"


def stamp(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Add level, timestamp, category, service identity and the bound context."""
    event_dict["timestamp"] = _timestamp(time.time())
    event_dict["level"] = method_name
    if "category" not in event_dict:
        event_dict["category"] = "error" if method_name in _ERROR_METHODS else "application"
    bound = get_context()
    if bound:
        for key, value in bound.items():
            if key not in event_dict:
                event_dict[key] = value
    for key, value in _STATE.static.items():
        if key not in event_dict:
            event_dict[key] = value
    return event_dict


def exception_data(exc: BaseException, limit: int = _EXC_FRAMES_LIMIT) -> dict[str, Any]:
    """A structured exception: type, message, frames (innermost last) and the chain."""
    data: dict[str, Any] = {
        "type": _qualified_name(type(exc)),
        "message": _safe_str(exc),
        "frames": [
            {"file": f.filename, "line": f.lineno, "function": f.name}
            for f in traceback.extract_tb(exc.__traceback__, limit=limit)
        ],
    }
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and limit > 1:
        data["caused_by"] = exception_data(cause, limit=max(limit // 2, 1))
    return data


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return cast(BaseException | None, exc_info[1])
    return sys.exc_info()[1]


def render_json(logger: Any, method_name: str, event_dict: EventDict) -> bytes:
    """One JSON object, one line: orjson escapes every control character, so no forged lines."""
    return orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def _json_default(value: Any) -> Any:
    return _safe_str(value)


_COLORS: Final = {
    "trace": "\x1b[2m", "debug": "\x1b[2m", "info": "\x1b[32m", "warning": "\x1b[33m",
    "error": "\x1b[31m", "critical": "\x1b[1;31m",
}


def _escape(text: str) -> str:
    """Console values on one line: control characters shown escaped, never executed."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def make_console_renderer(colors: bool) -> LogProcessor:
    """A readable one-line format for development: time level [logger] event key=value..."""

    def render_console(logger: Any, method_name: str, event_dict: EventDict) -> str:
        level = str(event_dict.pop("level", method_name))
        stamp_ = str(event_dict.pop("timestamp", ""))
        name = str(event_dict.pop("logger", ""))
        event = _escape(str(event_dict.pop("event", "")))
        for key in ("service", "environment", "version"):
            event_dict.pop(key, None)
        exc = event_dict.pop("exception", None)
        fields = " ".join(
            f"{_escape(str(k))}={_escape(v if isinstance(v, str) else _console_value(v))}"
            for k, v in event_dict.items()
        )
        head = f"{level.upper():<8}"
        if colors:
            head = f"{_COLORS.get(level, '')}{head}\x1b[0m"
        line = f"{stamp_[11:23]} {head} [{_escape(name)}] {event}  {fields}".rstrip()
        if exc is not None:
            line += f"  exception={_console_value(exc)}"
        return line

    return render_console


def _console_value(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_json_default).decode()
    except TypeError:
        return _safe_str(value)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception as exc:  # a broken __str__ must not break logging
        return f"<{type(value).__name__} (str failed: {type(exc).__name__})>"


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


# --- the logger ---------------------------------------------------------------------------------


class KansokuLogger(BoundLoggerBase):
    """A structlog bound logger with kansoku's levels (TRACE included) and category helpers."""

    _clean: tuple[Any, Any] = (None, None)  # (redactor, this logger's own context redacted by it)

    def _log(self, method: str, event: Any, kw: dict[str, Any], scan: tuple[str, ...] | None = None,
             hooks: bool = True) -> Any:
        # structlog's _proxy_to_logger with `stamp` inlined: this runs for every line, so the
        # common cases are written out here rather than called. The parts are redacted as they
        # come in (the call's fields here, the bound context once per context, the logger's own
        # once per logger, the static fields at configuration), so nothing is scanned twice. One
        # dict display then merges them in C: the first keys fix the order (timestamp, level,
        # logger, event...), later ones win: call fields > event > logger's own > bound > static.
        level = _LEVEL_OF_METHOD[method]
        state = _STATE
        if level < state.min_level:
            return None
        now = _time()
        redactor = state.redactor
        texts = redactor._text_cache
        if scan is not None:
            for key in scan:
                value = kw[key]
                kw[key] = texts.get(value) or redactor.redact_text(value)
        elif kw:
            redactor(None, method, kw)  # the call's own dict: redacted in place
        bound = _CONTEXT.get()
        if bound:
            last = state.last_context
            if last[0] is bound and last[1] is redactor:
                bound = last[2]
            else:
                clean = redactor.clean_mapping(bound)
                state.last_context, bound = (bound, redactor, clean), clean
        own = self._clean
        if own[0] is not redactor:
            own = self._clean = (redactor, redactor.clean_mapping(self._context))
        if event.__class__ is str:
            event = texts.get(event) or redactor.redact_text(event)
        elif event is not None:
            event = redactor.redact(event)
        event_dict: Any = {
            "timestamp": None, "level": method, "logger": None, "event": None,
            "category": "error" if level >= 40 else "application",
            **state.static, **bound, **own[1], "event": event, **kw,  # noqa: F601 - first fixes the place
        }
        event_dict["timestamp"] = _timestamp(now)
        event_dict["level"] = method
        if event_dict["logger"] is None:
            del event_dict["logger"]
        processors = state.processors
        try:
            if hooks:
                for hook in state.hooks:
                    event_dict = hook(self._logger, method, event_dict)
            if processors[-1] is render_json and "exc_info" not in event_dict:
                # Nothing for the exception step to do: render straight away.
                line: Any = orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
            else:
                for processor in processors:
                    event_dict = processor(self._logger, method, event_dict)
                line = event_dict
        except structlog.DropEvent:
            return None
        output = state.output
        if output.direct:  # stdout and no files: queue the line for the flusher, without a call more
            return _STDOUT.write(line + b"\n")
        return output.write(line, level)

    def fields(self, method: str, event: str, fields: dict[str, Any], *, scan: tuple[str, ...],
               hooks: bool = True) -> Any:
        """Log `fields` at `method`'s level, redacting only the string fields named in `scan`.

        For kansoku's own per-request lines: the other fields are values kansoku made itself
        (numbers, the route template, a validated address), so scanning them would find nothing.
        `hooks=False` skips the configured hooks (trace ids, breadcrumbs, error capture): for a
        line that carries its ids itself and is neither a breadcrumb nor an error. `fields` is
        used as is (no copy): the caller gives a fresh dict.
        """
        return self._log(method, event, fields, scan, hooks)

    def trace(self, event: str | None = None, **kw: Any) -> Any:
        """Log at TRACE (below DEBUG)."""
        return self._log("trace", event, kw)

    def debug(self, event: str | None = None, **kw: Any) -> Any:
        """Log at DEBUG."""
        return self._log("debug", event, kw)

    def info(self, event: str | None = None, **kw: Any) -> Any:
        """Log at INFO."""
        return self._log("info", event, kw)

    def warning(self, event: str | None = None, **kw: Any) -> Any:
        """Log at WARNING."""
        return self._log("warning", event, kw)

    warn = warning

    def error(self, event: str | None = None, **kw: Any) -> Any:
        """Log at ERROR (category `error` unless given); `exc_info=` attaches an exception."""
        return self._log("error", event, kw)

    def critical(self, event: str | None = None, **kw: Any) -> Any:
        """Log at CRITICAL (category `error` unless given)."""
        return self._log("critical", event, kw)

    fatal = critical

    def exception(self, event: str | None = None, **kw: Any) -> Any:
        """Log at ERROR with the exception being handled."""
        kw.setdefault("exc_info", True)
        return self._log("error", event, kw)

    def log(self, level: int | str, event: str | None = None, **kw: Any) -> Any:
        """Log at a level given by number or name."""
        name = level.lower() if isinstance(level, str) else _method_of_level(level)
        return self._log(name, event, kw)

    def audit(self, action: str, *, resource: str, result: str = "success", **kw: Any) -> Any:
        """An audit record (category `audit`): who did what to which resource, and the outcome."""
        kw.update(category="audit", action=action, resource=resource, result=result)
        return self._log("info", f"audit: {action} {resource} {result}", kw)

    def security(self, event: str, *, severity: str = "medium", **kw: Any) -> Any:
        """A security event (category `security`); high and critical severities log at ERROR."""
        kw.update(category="security", security_event=event, severity=severity)
        method = "error" if severity.lower() in ("high", "critical", "emergency") else "warning"
        return self._log(method, f"security: {event}", kw)

    def business(self, event: str, value: float | None = None, **kw: Any) -> Any:
        """A business event (category `business`), with an optional value (revenue, count...)."""
        kw.update(category="business", business_event=event)
        if value is not None:
            kw["value"] = value
        return self._log("info", f"business: {event}", kw)

    def performance(self, operation: str, duration: float, **kw: Any) -> Any:
        """A timing (seconds) of an operation; WARNING and `slow_operation=true` over the threshold."""
        duration_ms = round(duration * 1000, 3)
        threshold = float(kw.pop("threshold_ms", _STATE.slow_ms))
        slow = duration_ms > threshold
        kw.update(category="performance", operation=operation, duration_ms=duration_ms, slow_operation=slow)
        if slow:
            kw["threshold_ms"] = threshold
        return self._log("warning" if slow else "info", f"performance: {operation}", kw)


def _method_of_level(level: int) -> str:
    for name, number in sorted(LEVELS.items(), key=lambda item: -item[1]):
        if level >= number:
            return name
    return "trace"


def get_logger(name: str | None = None, **initial: Any) -> KansokuLogger:
    """A logger writing through kansoku's pipeline; `name` appears as the `logger` field."""
    context = {"logger": name or "app", **initial}
    return KansokuLogger(_STATE.output, processors=cast(Iterable[Any], _STATE.processors), context=context)


# --- configuration --------------------------------------------------------------------------------


def build_processors(settings: Settings, redactor: Redactor, *, console: bool, colors: bool) -> list[LogProcessor]:
    """The processors every record goes through after the hooks: the exception, then the renderer.

    Stamping and redaction are not in it: loggers do both while they build the event dict, and
    the stdlib bridge before the record enters the chain. Only the structured exception, made
    here, is redacted here. Hooks (configure_logging's) add kansoku's own fields (ids), which need
    no redaction.
    """
    renderer = make_console_renderer(colors) if console else render_json
    return [ExceptionFormatter(redactor), renderer]


class ExceptionFormatter:
    """Processor: `exc_info` (True, an exception or a sys.exc_info tuple) to redacted structured data."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        if "exc_info" in event_dict:
            exc_info = event_dict.pop("exc_info")
            exc = _exception_of(exc_info) if exc_info else None
            if exc is not None:
                event_dict["exception"] = self.redactor.redact(exception_data(exc), 1)
        return event_dict


def configure_logging(
    settings: Settings,
    *,
    hooks: Sequence[LogProcessor] = (),
    stream: Any = None,
    service: str | None = None,
) -> None:
    """Apply `settings` to every kansoku logger and to the standard library's logging."""
    target = stream if stream is not None else sys.stdout
    fmt = settings.log_format
    console = fmt == "console" or (fmt == "auto" and bool(getattr(target, "isatty", lambda: False)()))
    redactor = Redactor(settings.redact_keys, allow_pii=settings.allow_pii, max_string=settings.max_string_length)
    _STATE.redactor = redactor
    _STATE.min_level = LEVELS[settings.log_level.lower()]
    _STATE.slow_ms = settings.slow_threshold_ms
    static = {"service": service or settings.service, "environment": settings.environment}
    if settings.version:
        static["version"] = settings.version
    _STATE.static = dict(redactor.clean_mapping(static))
    _STATE.hooks[:] = hooks
    _STATE.processors[:] = build_processors(settings, redactor, console=console, colors=console)
    _STATE.output.stream = stream
    old_files, _STATE.output.files = _STATE.output.files, None
    if old_files is not None:
        old_files.close()
    if settings.log_dir is not None:
        _STATE.output.files = FileSinks.open(settings)
    _STATE.output.direct = not console and stream is None and _STATE.output.files is None
    if settings.stdlib_logging:
        bridge_stdlib(_STATE.min_level, access_log=settings.access_log)


# --- the standard library bridge -------------------------------------------------------------------

# LogRecord's own attributes, and uvicorn's `color_message` (the message again, with ANSI colours).
_RECORD_FIELDS: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message", "asctime", "taskName", "color_message"}


class StdlibBridge(logging.Handler):
    """A root handler that sends every `logging` record through kansoku's processors."""

    def emit(self, record: logging.LogRecord) -> None:
        method = _method_of_level(record.levelno)
        try:
            event_dict: dict[str, Any] = {
                "timestamp": "", "level": method, "logger": record.name, "event": record.getMessage()
            }
            for key, value in record.__dict__.items():
                if key not in _RECORD_FIELDS and not key.startswith("_"):
                    event_dict[key] = value  # `extra=` fields
            line: Any = _STATE.redactor(None, method, stamp(None, method, event_dict))
            if record.exc_info and record.exc_info[1] is not None:
                line["exc_info"] = record.exc_info  # after redaction: the chain formats and redacts it
            for processor in (*_STATE.hooks, *_STATE.processors):
                line = processor(None, method, line)
            _STATE.output.write(line, record.levelno)
        except structlog.DropEvent:
            return
        except Exception:
            self.handleError(record)


def bridge_stdlib(level: int, *, access_log: bool = True) -> None:
    """Route the root logger (and uvicorn's own loggers) through kansoku; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)
    root.addHandler(StdlibBridge())
    root.setLevel(max(level, logging.DEBUG) if level > TRACE else TRACE)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    if access_log:  # kansoku's middleware writes the access line; uvicorn's would repeat it
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def unbridge_stdlib() -> None:
    """Remove kansoku's handler from the root logger."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)


# --- decorators (the chapter's log_execution_time and log_database_operation) ----------------------

P = ParamSpec("P")
R = TypeVar("R")


def _timed_log(
    func: Callable[P, R], operation: str, category: str, threshold_ms: float | None, fields: dict[str, Any]
) -> Callable[P, R]:
    log = get_logger(func.__module__)

    def finish(start: float, exc: BaseException | None) -> None:
        duration_ms = round((time.perf_counter() - start) * 1000, 3)
        limit = threshold_ms if threshold_ms is not None else _STATE.slow_ms
        kw = {"category": category, "operation": operation, "duration_ms": duration_ms, **fields}
        if exc is not None:
            log.error(f"{operation} failed", exc_info=exc, success=False, **kw)
        elif duration_ms > limit:
            log.warning(f"{operation} slow", slow_operation=True, threshold_ms=limit, success=True, **kw)
        else:
            log.info(f"{operation} completed", success=True, **kw)

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = time.perf_counter()
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                finish(start, exc)
                raise
            finish(start, None)
            return result

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        start = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            finish(start, exc)
            raise
        finish(start, None)
        return result

    return wrapper


def log_execution_time(
    operation: str | None = None, *, category: str = "performance", threshold_ms: float | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Log each call's duration; WARNING when slower than the threshold; failures logged and re-raised."""

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        return _timed_log(func, operation or func.__qualname__, category, threshold_ms, {})

    return decorator


def log_database_operation(
    operation: str | None = None, *, table: str | None = None, threshold_ms: float | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Like `log_execution_time`, in category `database`, with the table when given."""

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        fields = {"table": table} if table else {}
        return _timed_log(func, operation or func.__qualname__, "database", threshold_ms, fields)

    return decorator


_STATE.processors[:] = [ExceptionFormatter(_STATE.redactor), render_json]
_STATE.output.direct = True
