"""An exception's traceback, walked once and shared by the error event, the log line and the span.

A failing request meets its exception three times: the error event (`errors.capture`), the error
log line (`logs`) and the span's exception event (`tracing`). The standard library's `traceback`
module, used by each, stats every frame's file (`linecache.checkcache`) and parses its source for
the caret anchors (`ast.parse`, Python 3.11+) on the request path. Here the walk keeps the
traceback entries (bounded: the outermost 10 and the innermost 40) and is cached on the exception,
so the three pay for one walk and read no file. The text of a traceback (`format_exception`) is
made only when something reads it: for a span, when it is exported, off the request path.
"""

from __future__ import annotations

import linecache
from collections.abc import Sequence
from types import CodeType, TracebackType
from typing import Final, Literal, NamedTuple

__all__ = ["MAX_CHAIN", "MAX_FRAMES", "Relation", "Stack", "format_exception", "qualified_name", "safe_str",
           "stack_of", "walk_chain"]

MAX_CHAIN: Final = 5
MAX_FRAMES: Final = 50  # per exception: the outermost 10 and the innermost 40 are kept
_OUTER: Final = 10
_CACHE: Final = "__kansoku_stack__"
Relation = Literal["cause", "context", ""]


class Stack(NamedTuple):
    """The kept traceback entries of one exception (outermost first), and how many were left out."""

    entries: tuple[TracebackType, ...]
    omitted: int

    def locations(self) -> tuple[tuple[CodeType, int], ...]:
        """(code object, line) per kept frame: what a traceback's text needs, and no frame's locals."""
        return tuple((entry.tb_frame.f_code, entry.tb_lineno or 0) for entry in self.entries)


def stack_of(exc: BaseException) -> Stack:
    """The traceback of `exc`, walked once per traceback (cached on the exception).

    An exception that travels further up gets a new head entry, so the cache is keyed by the head.
    """
    tb = exc.__traceback__
    cached = getattr(exc, _CACHE, None)
    if cached is not None and cached[0] is tb:
        return cached[1]  # type: ignore[no-any-return]
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    omitted = 0
    if len(entries) > MAX_FRAMES:
        omitted = len(entries) - MAX_FRAMES
        entries = entries[:_OUTER] + entries[-(MAX_FRAMES - _OUTER):]
    stack = Stack(tuple(entries), omitted)
    try:
        setattr(exc, _CACHE, (exc.__traceback__, stack))
    except (AttributeError, TypeError):  # an exception type without a __dict__: walk again next time
        pass
    return stack


def walk_chain(exc: BaseException) -> list[tuple[BaseException, Relation]]:
    """The exception and its causes/contexts, root cause first; each with how it led to the next."""
    chain: list[tuple[BaseException, Relation]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    relation: Relation = ""
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(current))
        chain.append((current, relation))
        if current.__cause__ is not None:
            current, relation = current.__cause__, "cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, relation = current.__context__, "context"
        else:
            current = None
    chain.reverse()
    return chain


def qualified_name(cls: type) -> str:
    """`ValueError`, `mypkg.errors.PaymentError` (builtins and `__main__` unqualified)."""
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in ("builtins", "__main__", "") else f"{module}.{name}"


def safe_str(value: object) -> str:
    """`str(value)` that survives a broken `__str__`."""
    try:
        return str(value)
    except Exception as exc:
        return f"<{type(value).__name__} (str failed: {type(exc).__name__})>"


def format_exception(chain: Sequence[tuple[str, str, Sequence[tuple[CodeType, int]], int, str]]) -> str:
    """The text of a traceback, as Python prints it (without the caret lines), from locations.

    `chain`: (type name, message, locations, omitted, how it led to the next: "cause", "context"
    or "") per exception, root cause first. Source lines come from linecache (read once per file).
    """
    parts: list[str] = []
    for type_name, message, locations, omitted, relation in chain:
        parts.append("Traceback (most recent call last):\n")
        for index, (code, lineno) in enumerate(locations):
            if omitted and index == _OUTER:
                parts.append(f"  [Previous {omitted} frames omitted]\n")
            parts.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
            line = linecache.getline(code.co_filename, lineno).strip()
            if line:
                parts.append(f"    {line}\n")
        parts.append(f"{type_name}: {message}\n" if message else f"{type_name}\n")
        if relation == "cause":
            parts.append("\nThe above exception was the direct cause of the following exception:\n\n")
        elif relation == "context":
            parts.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    return "".join(parts)
