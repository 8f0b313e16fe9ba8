"""The logger's hot path: the shared state every logger reads, the bound logger and the output.

Every line is stamped (time, level, service, context) and redacted while its event dict is built,
then goes through the hooks and the processors (`logs._render`) and is queued for stdout (a flusher
thread writes it: no I/O on the request path) and the file sinks.
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

import orjson
import structlog
from structlog import BoundLoggerBase

from kansoku.context import _CONTEXT, get_context
from kansoku.logs._files import FileSinks, LineWriter
from kansoku.logs._render import ExceptionFormatter, _json_default, render_json
from kansoku.redact import Redactor
from kansoku.typing import EventDict, LogProcessor

__all__ = ["CATEGORIES", "LEVELS", "TRACE", "KansokuLogger", "finish_line", "flush", "get_logger", "method_of_level",
           "stamp"]

TRACE: Final = 5
LEVELS: Final = {"trace": TRACE, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_LEVEL_OF_METHOD: Final = {**LEVELS, "exception": 40, "warn": 30, "fatal": 50}
CATEGORIES: Final = (
    "application", "security", "performance", "audit", "business", "system", "database", "api",
    "authentication", "error",
)
_ERROR_METHODS: Final = frozenset({"error", "critical", "exception", "fatal"})
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
        # Called with (level, event dict) of each finished line before it is rendered: the log
        # store's keeper (logs._keep), or None when lines are not stored.
        self.keep: Callable[[int, EventDict], None] | None = None


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
            # The exception is the pipeline's to read (error capture, then the formatter, which
            # redacts what it makes of it): kept out of the redactor, which would turn it into its
            # repr. The chapter's `error=e` is the same exception under another name.
            exc_info = kw.pop("exc_info", None)
            if exc_info is None and isinstance(kw.get("error"), BaseException):
                exc_info = kw["error"]
            redactor(None, method, kw)  # the call's own dict: redacted in place
            if exc_info is not None:
                kw["exc_info"] = exc_info
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
            keep = state.keep
            if len(processors) == 2 and processors[-1] is render_json and "exc_info" not in event_dict:
                # Nothing for the exception step to do: render straight away.
                if keep is not None:
                    keep(level, event_dict)
                line: Any = orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
            else:
                line = finish_line(self._logger, method, level, event_dict, processors, keep)
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
        name = level.lower() if isinstance(level, str) else method_of_level(level)
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


def finish_line(logger: Any, method: str, level: int, event_dict: Any, processors: list[LogProcessor],
                keep: Callable[[int, EventDict], None] | None) -> Any:
    """The processors (the exception step, then the renderer), the keeper seeing the line before rendering."""
    for processor in processors[:-1]:
        event_dict = processor(logger, method, event_dict)
    if keep is not None:
        keep(level, event_dict)
    return processors[-1](logger, method, event_dict)


def method_of_level(level: int) -> str:
    for name, number in sorted(LEVELS.items(), key=lambda item: -item[1]):
        if level >= number:
            return name
    return "trace"


def get_logger(name: str | None = None, **initial: Any) -> KansokuLogger:
    """A logger writing through kansoku's pipeline; `name` appears as the `logger` field."""
    context = {"logger": name or "app", **initial}
    return KansokuLogger(_STATE.output, processors=cast(Iterable[Any], _STATE.processors), context=context)


_STATE.processors[:] = [ExceptionFormatter(_STATE.redactor), render_json]
_STATE.output.direct = True
