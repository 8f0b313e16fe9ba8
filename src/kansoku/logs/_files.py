"""Log files: a daily-rotated application log and a size-rotated error log, written off-thread."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

from kansoku._safety import report_internal_error
from kansoku._worker import BackgroundWorker
from kansoku.settings import Settings

__all__ = ["FileSinks"]

ERROR_LEVEL = 40


class _Raising:
    """Mixin: let write failures reach kansoku's reporting instead of logging's stderr dump."""

    def handleError(self, record: logging.LogRecord) -> None:
        raise


class _Daily(_Raising, logging.handlers.TimedRotatingFileHandler):
    pass


class _Sized(_Raising, logging.handlers.RotatingFileHandler):
    pass


def _record(line: bytes) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": line.decode("utf-8", "replace")})


class FileSinks:
    """The files under `log_dir`. `write()` only queues; a worker thread writes and rotates."""

    def __init__(self, app: logging.Handler, errors: logging.Handler, worker: BackgroundWorker) -> None:
        self.app = app
        self.errors = errors
        self.worker = worker
        self.failed = False

    @classmethod
    def open(cls, settings: Settings) -> FileSinks | None:
        """Open the files; on failure report once on stderr and return None (stdout carries on)."""
        assert settings.log_dir is not None
        directory = Path(settings.log_dir)
        name = settings.service
        try:
            directory.mkdir(parents=True, exist_ok=True)
            app = _Daily(
                directory / f"{name}.log", when=settings.log_rotate_when, backupCount=settings.log_retention_days,
                encoding="utf-8", utc=True,
            )
            errors = _Sized(
                directory / f"{name}.error.log", maxBytes=settings.error_log_max_bytes,
                backupCount=settings.error_log_backups, encoding="utf-8",
            )
        except OSError as exc:
            print(f"kansoku: cannot write logs to {directory} ({exc.strerror}); logging to stdout only. "
                  "Fix the directory's permissions or unset KANSOKU_LOG_DIR.", file=sys.stderr, flush=True)
            report_internal_error("log-files", exc)
            return None
        for handler in (app, errors):
            handler.setFormatter(logging.Formatter("%(message)s"))
        sinks = cls(app, errors, BackgroundWorker("log-files", maxsize=settings.queue_size))
        sinks.worker._batch = sinks._write_batch
        return sinks

    def write(self, line: bytes, level: int) -> None:
        """Queue one rendered line (never blocks; a full queue drops and counts)."""
        self.worker.submit((line, level))

    def _write_batch(self, items: list[Any]) -> None:
        try:
            for line, level in items:
                record = _record(line)
                self.app.emit(record)
                if level >= ERROR_LEVEL:
                    self.errors.emit(record)
            self.failed = False
        except OSError as exc:
            if not self.failed:
                print(f"kansoku: writing log files failed ({exc.strerror}); lines go to stdout only "
                      "until it recovers", file=sys.stderr, flush=True)
            self.failed = True
            report_internal_error("log-files", exc)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait for queued lines to reach the files."""
        return self.worker.flush(timeout)

    def close(self) -> None:
        """Flush and close the files."""
        self.worker.close()
        for handler in (self.app, self.errors):
            try:
                handler.close()
            except OSError as exc:  # the last flush can fail like any write (disk full)
                report_internal_error("log-files", exc)


class LineWriter:
    """Lines to a stream from a flusher thread, so that logging on the request path does no I/O.

    `write()` appends to a deque (thread-safe, no lock) and returns; every few milliseconds the
    flusher writes what piled up in one call. Past `max_pending` lines the newest are dropped and
    counted rather than letting memory grow. `flush()` writes everything now (shutdown, tests).
    """

    def __init__(self, emit: Any, *, interval: float = 0.005, max_pending: int = 100_000) -> None:
        import collections
        import os
        import threading
        import weakref

        self._emit = emit
        self._interval = interval
        self._max_pending = max_pending
        self._pending: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()  # serialises flushes, never held by write()
        self._pid = -1
        self._getpid = os.getpid
        self._running = False  # the flusher thread of this process is started
        self.dropped = 0
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(ref))

    def write(self, data: bytes) -> None:
        """Queue one line (with its newline)."""
        if not self._running:
            self._start()
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending.append(data)

    def _start(self) -> None:
        import threading

        with self._lock:
            if self._running:
                return
            self._pid = self._getpid()
            threading.Thread(target=self._run, name="kansoku-log-writer", daemon=True).start()
            self._running = True

    def _after_fork(self) -> None:
        """In a forked child: the flusher thread did not survive, nor must the parent's lines."""
        import threading

        self._lock = threading.Lock()
        self._pending.clear()
        self._running = False

    def _run(self) -> None:
        import time

        pid = self._getpid()
        while self._pid == pid:
            time.sleep(self._interval)
            self.flush()

    def flush(self) -> None:
        """Write every queued line now."""
        with self._lock:
            pending = self._pending
            if not pending:
                return
            batch = []
            while pending:
                batch.append(pending.popleft())
            try:
                self._emit(b"".join(batch))
            except (OSError, ValueError) as exc:  # closed or broken stdout: nothing else to tell
                report_internal_error("log-stdout", exc)


def _forked(ref: Any) -> None:
    writer = ref()
    if writer is not None:
        writer._after_fork()
