"""Request, user and trace context in one ContextVar, read by logs, spans and error events.

One variable holding an immutable-by-convention dict is cheaper to read on every log line than
one ContextVar per key. asyncio tasks inherit it by design; threads and executors started inside
inherit it too once `propagate_to_threads()` has run (`instrument()` does that).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

__all__ = [
    "bind_context",
    "clear_context",
    "context",
    "get_context",
    "propagate_to_threads",
    "unbind_context",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("kansoku_context", default=_EMPTY)
_MISSING = object()


def get_context() -> Mapping[str, Any]:
    """The fields bound in the current context (do not mutate)."""
    return _CONTEXT.get()


def bind_context(**fields: Any) -> None:
    """Bind fields for the rest of the current context (request, task or thread)."""
    _CONTEXT.set({**_CONTEXT.get(), **fields})


def unbind_context(*names: str) -> None:
    """Remove fields from the current context."""
    current = _CONTEXT.get()
    _CONTEXT.set({k: v for k, v in current.items() if k not in names})


def clear_context() -> None:
    """Remove every field from the current context."""
    _CONTEXT.set({})


@contextmanager
def context(**fields: Any) -> Iterator[Mapping[str, Any]]:
    """Bind `fields` for the block; on exit restore exactly the keys it changed.

    Keys bound by other code inside the block survive it; the block's own keys get back the value
    they had before (or go away if they had none).
    """
    before = _CONTEXT.get()
    previous = {name: before.get(name, _MISSING) for name in fields}
    _CONTEXT.set({**before, **fields})
    try:
        yield _CONTEXT.get()
    finally:
        restored = dict(_CONTEXT.get())
        for name, value in previous.items():
            if value is _MISSING:
                restored.pop(name, None)
            else:
                restored[name] = value
        _CONTEXT.set(restored)


_patched = False


def propagate_to_threads() -> None:
    """Make `threading.Thread` and `ThreadPoolExecutor.submit` carry the starter's context.

    Python copies contextvars into asyncio tasks but not into threads (before 3.14's flag); logs,
    spans and errors from a worker thread started inside a request should still carry its ids.
    Idempotent.
    """
    global _patched
    if _patched:
        return
    _patched = True
    original_start = threading.Thread.start
    original_submit = concurrent.futures.ThreadPoolExecutor.submit

    def start(self: threading.Thread) -> None:
        # Shadow the (possibly overridden) run method on the instance, so subclasses work too.
        captured, target = contextvars.copy_context(), self.run
        self.run = lambda: captured.run(target)  # type: ignore[method-assign]
        original_start(self)

    def submit(
        self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        return original_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    threading.Thread.start = start  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]
