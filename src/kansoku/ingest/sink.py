"""Ingested rows into the store: a bounded queue and one writer thread per kind (spans, log records).

`submit(rows)` queues one request's rows (False when the queue is full: answer 503, the sender
retries). The writer thread makes each row ready with `prepare` (the redaction pass, once per row) and
hands the batch to `write`, which stores it in one transaction.
While the store fails, the batch is retried with backoff and the queue fills up instead of losing
what was acknowledged; `close(timeout)` writes what is queued.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from kansoku._safety import report_internal_error
from kansoku._worker import BackgroundWorker

__all__ = ["Sink"]

Write = Callable[[list[Any]], Any]
Prepare = Callable[[dict[str, Any]], Any]


class Sink:
    """Writes ingested rows (`prepare`d, then `write`n) from one thread named `name`."""

    def __init__(self, name: str, prepare: Prepare, write: Write, *, maxsize: int = 10_000,
                 max_batch: int = 200) -> None:
        self.name = name
        self.prepare = prepare
        self.write = write
        self.stored = 0
        self.failures = 0
        self.closing = False
        self._pause = threading.Event()
        self._worker = BackgroundWorker(name, maxsize=maxsize, batch=self._write_batch, max_batch=max_batch)

    def submit(self, rows: Sequence[dict[str, Any]]) -> bool:
        """Queue one request's rows; False (nothing queued) when the queue is full."""
        return not rows or self._worker.submit(list(rows))

    @property
    def depth(self) -> int:
        """Requests' worth of rows waiting."""
        return self._worker.depth

    def _write_batch(self, items: list[list[dict[str, Any]]]) -> None:
        rows = [self.prepare(row) for item in items for row in item]
        backoff = 0.05
        while True:
            try:
                self.write(rows)
            except Exception as exc:  # the store is down or refuses: retry, keeping the queue bounded
                self.failures += 1
                report_internal_error(self.name, exc)
                if self.closing and backoff >= 1.0:
                    return  # shutting down with the store gone: give up (reported)
                self._pause.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self.stored += len(rows)
            return

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is written."""
        return self._worker.flush(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued (retrying the store a little), then stop the thread."""
        flushed = self._worker.flush(timeout)
        self.closing = True
        return self._worker.close(1.0) and flushed
