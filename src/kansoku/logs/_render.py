"""Renderers: an event dict to one JSON line or one console line, and exceptions to structured data.

Both renderers keep a record on one line whatever it holds: orjson escapes every control character,
and the console renderer shows them escaped, so a client's input can never forge a line.
"""

from __future__ import annotations

import sys
from typing import Any, Final

import orjson

from kansoku.logs._frames import MAX_CHAIN, qualified_name, safe_str, stack_of
from kansoku.redact import Redactor
from kansoku.typing import EventDict, LogProcessor

__all__ = ["ExceptionFormatter", "exception_data", "exception_of", "make_console_renderer", "render_json"]

def exception_data(exc: BaseException, depth: int = MAX_CHAIN) -> dict[str, Any]:
    """A structured exception: type, message, frames (innermost last) and the chain.

    The frames are the shared walk of `kansoku.logs._frames` (the outermost 10 and the innermost 40):
    no source file is read on the logging thread.
    """
    stack = stack_of(exc)
    data: dict[str, Any] = {
        "type": qualified_name(type(exc)),
        "message": safe_str(exc),
        "frames": [{"file": code.co_filename, "line": line, "function": code.co_name}
                   for code, line in stack.locations()],
    }
    if stack.omitted:
        data["frames_omitted"] = stack.omitted
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and depth > 1:
        data["caused_by"] = exception_data(cause, depth - 1)
    return data


def exception_of(exc_info: Any) -> BaseException | None:
    """The exception a log call's `exc_info` names, as the standard library reads it.

    An exception itself, a `sys.exc_info()` tuple, or any other true value for the exception being
    handled; None when there is none.
    """
    if not exc_info:
        return None
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        value = exc_info[1] if len(exc_info) == 3 else None
        return value if isinstance(value, BaseException) else None
    return sys.exc_info()[1]


def render_json(logger: Any, method_name: str, event_dict: EventDict) -> bytes:
    """One JSON object, one line: orjson escapes every control character, so no forged lines."""
    return orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def _json_default(value: Any) -> Any:
    return safe_str(value)


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
        return safe_str(value)


class ExceptionFormatter:
    """Processor: `exc_info` (True, an exception or a sys.exc_info tuple) to redacted structured data."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        if "exc_info" in event_dict:
            exc_info = event_dict.pop("exc_info")
            exc = exception_of(exc_info)
            if exc is not None:
                event_dict["exception"] = self.redactor.redact(exception_data(exc), 1)
        return event_dict
