"""Internal errors never break the host app; tests (strict mode) still see them."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["internal_error_count", "is_strict", "report_internal_error", "set_strict", "suppress_internal_errors"]

_strict = False
_lock = threading.Lock()
_counts: dict[str, int] = {}
_reported: set[str] = set()
_listeners: list[Callable[[str, BaseException], None]] = []


def set_strict(strict: bool) -> None:
    """In strict mode (tests) internal errors are raised instead of reported."""
    global _strict
    _strict = strict


def is_strict() -> bool:
    """Whether internal errors raise (tests) rather than being reported."""
    return _strict


def internal_error_count(where: str | None = None) -> int:
    """How many internal errors were reported (at `where`, or in all)."""
    with _lock:
        return _counts.get(where, 0) if where else sum(_counts.values())


def internal_error_counts() -> dict[str, int]:
    """A copy of the internal error counts by place (exported as a metric)."""
    with _lock:
        return dict(_counts)


def add_listener(listener: Callable[[str, BaseException], None]) -> None:
    """Call `listener(where, exc)` on every reported internal error (metrics use this)."""
    _listeners.append(listener)


def report_internal_error(where: str, exc: BaseException) -> None:
    """Count an internal error; print it on stderr the first time it happens at `where`."""
    with _lock:
        _counts[where] = _counts.get(where, 0) + 1
        first = where not in _reported
        _reported.add(where)
    if first:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(f"kansoku: internal error in {where}: {detail} (reported once; see kansoku_internal_errors_total)",
              file=sys.stderr, flush=True)
    for listener in list(_listeners):
        try:
            listener(where, exc)
        except Exception:  # noqa: S110 - a broken listener must not loop back here
            pass


@contextmanager
def suppress_internal_errors(where: str) -> Iterator[None]:
    """Run kansoku's own work: report an exception from it instead of raising into the host app."""
    try:
        yield
    except Exception as exc:
        if _strict:
            raise
        report_internal_error(where, exc)
