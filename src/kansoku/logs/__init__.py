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

import functools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from kansoku._delegate import Finish, around
from kansoku.logs._files import FileSinks
from kansoku.logs._keep import UNSTORED, LogKeeper, LogStoreCollector, record_of
from kansoku.logs._logger import (
    _STATE,
    CATEGORIES,
    LEVELS,
    TRACE,
    KansokuLogger,
    flush,
    get_logger,
    stamp,
)
from kansoku.logs._render import ExceptionFormatter, exception_data, exception_of, make_console_renderer, render_json
from kansoku.logs._stdlib import StdlibBridge, bridge_stdlib, unbridge_stdlib
from kansoku.redact import Redactor, redactor_for
from kansoku.settings import Settings
from kansoku.typing import LogProcessor

__all__ = [
    "CATEGORIES",
    "LEVELS",
    "TRACE",
    "UNSTORED",
    "ExceptionFormatter",
    "KansokuLogger",
    "LogKeeper",
    "LogStoreCollector",
    "StdlibBridge",
    "bridge_stdlib",
    "build_processors",
    "configure_logging",
    "exception_data",
    "exception_of",
    "flush",
    "get_logger",
    "keeper_for",
    "log_database_operation",
    "log_execution_time",
    "make_console_renderer",
    "record_of",
    "render_json",
    "stamp",
    "stop_keeping",
    "unbridge_stdlib",
]


def keeper_for(settings: Settings, write: Callable[[list[dict[str, Any]]], Any]) -> LogKeeper:
    """The log store's keeper configured by `settings` (level, per-logger levels, budget, queue size)."""
    return LogKeeper(write, level=LEVELS[settings.log_store_level.lower()],
                     logger_levels={name: LEVELS[level.lower()] for name, level in settings.log_store_levels.items()},
                     per_second=settings.log_store_rate, max_pending=settings.queue_size)


def stop_keeping(keeper: Any) -> None:
    """Stop handing lines to `keeper` (if it is the one in use): a runtime shutting down."""
    if _STATE.keep is keeper:
        _STATE.keep = None


def build_processors(settings: Settings, redactor: Redactor, *, console: bool, colors: bool) -> list[LogProcessor]:
    """The processors every record goes through after the hooks: the exception, then the renderer.

    Stamping and redaction are not in it: loggers do both while they build the event dict, and
    the stdlib bridge before the record enters the chain. Only the structured exception, made
    here, is redacted here. Hooks (configure_logging's) add kansoku's own fields (ids), which need
    no redaction.
    """
    renderer = make_console_renderer(colors) if console else render_json
    return [ExceptionFormatter(redactor), renderer]


def configure_logging(
    settings: Settings,
    *,
    hooks: Sequence[LogProcessor] = (),
    stream: Any = None,
    service: str | None = None,
    sinks: Sequence[LogProcessor] = (),
    keep: Callable[[int, Any], None] | None = None,
) -> None:
    """Apply `settings` to every kansoku logger and to the standard library's logging.

    `sinks` see every finished record before it is rendered (the OTLP log export); `keep` receives
    each finished line for the log store (a `LogKeeper`); None: lines are not stored.
    """
    target = stream if stream is not None else sys.stdout
    fmt = settings.log_format
    console = fmt == "console" or (fmt == "auto" and bool(getattr(target, "isatty", lambda: False)()))
    redactor = redactor_for(settings)
    _STATE.redactor = redactor
    _STATE.min_level = LEVELS[settings.log_level.lower()]
    _STATE.slow_ms = settings.slow_threshold_ms
    static = {"service": service or settings.service, "environment": settings.environment}
    if settings.version:
        static["version"] = settings.version
    _STATE.static = dict(redactor.clean_mapping(static))
    _STATE.hooks[:] = hooks
    _STATE.keep = keep
    processors = build_processors(settings, redactor, console=console, colors=console)
    _STATE.processors[:] = [*processors[:-1], *sinks, processors[-1]]
    _STATE.output.stream = stream
    old_files, _STATE.output.files = _STATE.output.files, None
    if old_files is not None:
        old_files.close()
    if settings.log_dir is not None:
        _STATE.output.files = FileSinks.open(settings)
    _STATE.output.direct = not console and stream is None and _STATE.output.files is None
    if settings.stdlib_logging:
        bridge_stdlib(_STATE.min_level, access_log=settings.access_log)


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

    def begin() -> Finish:
        return functools.partial(finish, time.perf_counter())

    return around(func, begin)


def log_execution_time(
    operation: str | None = None, *, category: str = "performance", threshold_ms: float | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Log each call's duration; WARNING when slower than the threshold; failures logged and re-raised.

    A generator function is logged when its iteration ends (duration from its first step).
    """

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
