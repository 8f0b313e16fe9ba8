"""One bounded background worker for anything slow: submit never blocks, drops are counted."""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from kansoku._safety import report_internal_error

__all__ = ["BackgroundWorker", "live_workers"]

_STOP = object()
_ALL: weakref.WeakSet[BackgroundWorker] = weakref.WeakSet()  # read by kansoku's health metrics


def live_workers() -> list[BackgroundWorker]:
    """Every BackgroundWorker of this process that still exists (for queue metrics)."""
    return list(_ALL)


class BackgroundWorker:
    """A daemon thread that runs callables handed to it, in order.

    `submit()` returns False (and counts a drop) when the queue is full, instead of blocking the
    caller. `flush(timeout)` waits until everything submitted so far has run. Fork-safe: a child
    process starts its own thread on first use. A `batch` handler, if given, receives lists of
    items instead, so that a writer can insert many rows in one transaction.
    """

    def __init__(
        self,
        name: str,
        *,
        maxsize: int = 10_000,
        batch: Callable[[list[Any]], None] | None = None,
        max_batch: int = 500,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0
        self._batch = batch
        self._max_batch = max_batch
        self._on_drop = on_drop
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        _ALL.add(self)

    @property
    def depth(self) -> int:
        """Items waiting in the queue."""
        return self._queue.qsize()

    def is_alive(self) -> bool:
        """Whether this process's thread is running."""
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    def _ensure_thread(self) -> None:
        if self.is_alive():
            return
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's queue and counters are not ours
                self._queue = queue.Queue(self.maxsize)
                self._pending = 0
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name=f"kansoku-{self.name}", daemon=True)
                self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue a callable (or an item for the batch handler); False if the queue was full."""
        self._ensure_thread()
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._pending -= 1
                self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far was handled; False on timeout."""
        if not self.is_alive():
            return self._pending == 0
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the thread."""
        flushed = self.flush(timeout)
        if self.is_alive():
            try:
                self._queue.put(_STOP, timeout=1.0)
            except queue.Full:
                return False
            assert self._thread is not None
            self._thread.join(timeout)
        return flushed

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            items = [item]
            if self._batch is not None:
                while len(items) < self._max_batch:
                    try:
                        extra = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if extra is _STOP:
                        self._queue.put(_STOP)
                        break
                    items.append(extra)
            try:
                if self._batch is not None:
                    self._batch(items)
                else:
                    item()
            except Exception as exc:  # a thread has no caller to raise to: report it
                report_internal_error(f"worker:{self.name}", exc)
            finally:
                with self._idle:
                    self._pending -= len(items)
                    if self._pending <= 0:
                        self._idle.notify_all()
