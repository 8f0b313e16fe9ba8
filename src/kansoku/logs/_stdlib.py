"""The standard library bridge: `logging` records (uvicorn, SQLAlchemy, httpx...) through kansoku's chain."""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

import structlog

from kansoku.logs._logger import _STATE, TRACE, finish_line, method_of_level, stamp

__all__ = ["StdlibBridge", "bridge_stdlib", "unbridge_stdlib"]


# LogRecord's own attributes, and uvicorn's `color_message` (the message again, with ANSI colours).
_RECORD_FIELDS: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message", "asctime", "taskName", "color_message"}


class StdlibBridge(logging.Handler):
    """A root handler that sends every `logging` record through kansoku's processors."""

    def emit(self, record: logging.LogRecord) -> None:
        method = method_of_level(record.levelno)
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
            for hook in _STATE.hooks:
                line = hook(None, method, line)
            line = finish_line(None, method, record.levelno, line, _STATE.processors, _STATE.keep)
            _STATE.output.write(line, record.levelno)
        except structlog.DropEvent:
            return
        except Exception:
            self.handleError(record)


# The root's console handlers that bridging took away (the app's `logging.basicConfig()`), put back
# by `unbridge_stdlib`.
_REPLACED: list[logging.Handler] = []


def _is_console(handler: logging.Handler) -> bool:
    """A plain StreamHandler on stdout or stderr (basicConfig's), not a file or a test's capture."""
    stream = getattr(handler, "stream", None)
    return type(handler) is logging.StreamHandler and stream in (sys.stdout, sys.stderr, sys.__stdout__,
                                                                  sys.__stderr__)


def bridge_stdlib(level: int, *, access_log: bool = True) -> None:
    """Route the root logger (and uvicorn's own loggers) through kansoku; idempotent.

    kansoku's line replaces the console output of the app's own `logging.basicConfig()`: the root's
    plain stdout/stderr handlers are taken off (else every record prints twice, as text and JSON).
    File handlers and any other handler stay.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)
        elif _is_console(handler):
            root.removeHandler(handler)
            _REPLACED.append(handler)
    root.addHandler(StdlibBridge())
    root.setLevel(max(level, logging.DEBUG) if level > TRACE else TRACE)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    if access_log:  # kansoku's middleware writes the access line; uvicorn's would repeat it
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def unbridge_stdlib() -> None:
    """Remove kansoku's handler from the root logger; put back the console handlers it replaced."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)
    while _REPLACED:
        root.addHandler(_REPLACED.pop(0))
