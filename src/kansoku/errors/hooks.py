"""Capture what nothing else catches: `sys.excepthook`, `threading.excepthook`, asyncio's handler.

Each installer chains to the hook that was there before (the default prints the traceback) and
returns a function that puts the previous hook back.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from kansoku.errors.tracker import ErrorTracker

__all__ = ["install_asyncio_handler", "install_excepthook", "install_hooks", "install_threading_excepthook"]

Uninstall = Callable[[], None]


def install_excepthook(tracker: ErrorTracker, *, flush_timeout: float = 2.0) -> Uninstall:
    """Capture uncaught exceptions of the main thread, flush (the process is ending), then chain."""
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not isinstance(value, KeyboardInterrupt):  # Ctrl-C is not an error
            tracker.capture(value, mechanism="excepthook", handled=False, level="fatal")
            tracker.flush(flush_timeout)
        previous(kind, value, tb)

    sys.excepthook = excepthook

    def uninstall() -> None:
        if sys.excepthook is excepthook:
            sys.excepthook = previous

    return uninstall


def install_threading_excepthook(tracker: ErrorTracker) -> Uninstall:
    """Capture exceptions that end a thread, then chain."""
    previous = threading.excepthook

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            thread = args.thread.name if args.thread is not None else ""
            tracker.capture(args.exc_value, mechanism="threading", handled=False, thread=thread)
        previous(args)

    threading.excepthook = excepthook

    def uninstall() -> None:
        if threading.excepthook is excepthook:
            threading.excepthook = previous

    return uninstall


def install_asyncio_handler(
    tracker: ErrorTracker, loop: asyncio.AbstractEventLoop | None = None
) -> Uninstall:
    """Capture exceptions asyncio reports (a task's exception never retrieved...), then chain."""
    target = loop if loop is not None else asyncio.get_running_loop()
    previous = target.get_exception_handler()

    def handler(event_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            tracker.capture(exc, mechanism="asyncio", handled=False,
                            asyncio_message=str(context.get("message", ""))[:256])
        if previous is not None:
            previous(event_loop, context)
        else:
            event_loop.default_exception_handler(context)

    target.set_exception_handler(handler)

    def uninstall() -> None:
        if target.get_exception_handler() is handler:
            target.set_exception_handler(previous)

    return uninstall


def install_hooks(tracker: ErrorTracker, *, loop: asyncio.AbstractEventLoop | None = None) -> Uninstall:
    """Install the excepthooks, and asyncio's handler when a loop is given or running."""
    undo = [install_excepthook(tracker), install_threading_excepthook(tracker)]
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
    if loop is not None:
        undo.append(install_asyncio_handler(tracker, loop))

    def uninstall() -> None:
        for step in reversed(undo):
            step()

    return uninstall
