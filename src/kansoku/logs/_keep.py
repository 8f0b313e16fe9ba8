"""Which log lines the store keeps, decided on the logging thread in constant time; a writer thread stores them.

`LogKeeper(write)` is called with each finished line (its level and redacted event dict, before
rendering). It keeps the line when its level reaches the store's level (`log_store_level`, or the
level of the longest matching logger prefix in `log_store_levels`) and, for INFO and below, while
the per-second budget lasts (`log_store_rate`: a token bucket holding one second's worth; WARNING
and up are always kept). A kept line is a dict copy appended to a bounded deque: no lock, no I/O,
no allocation past the copy. Every `interval` seconds the writer thread turns what piled up into
`LogRecord`s and hands them to `write` (`store.logs.write_logs`) in batches.

Lines of a request kept out of observation (`observe_exclude`: kansoku's own routes by default)
are not stored: the middleware sets `UNSTORED` for it. Lines not kept otherwise are counted by
reason: `budget` (over the rate), `queue` (the deque was full: the store is slower than the
logging), `error` (the store failed; the lines still went to stdout).
"""

from __future__ import annotations

import atexit
import collections
import datetime
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, Metric

from kansoku._safety import report_internal_error

__all__ = ["UNSTORED", "LogKeeper", "LogStoreCollector", "record_of"]

UNSTORED: ContextVar[bool] = ContextVar("kansoku_unstored", default=False)
"""True inside a request kept out of the store (`observe_exclude`: kansoku's own routes)."""

_COLUMNS: Final = ("logger", "service", "environment", "version", "request_id", "trace_id", "span_id")
WARNING: Final = 30


_unstored = UNSTORED.get


def _epoch(stamp: Any) -> float:
    if isinstance(stamp, int | float):
        return float(stamp)
    if isinstance(stamp, str):
        try:
            return datetime.datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            pass
    return time.time()


def record_of(level: int, event_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The store record of one kansoku log line (its event dict): columns apart, the rest attributes."""
    fields = dict(event_dict)
    stamp = fields.pop("timestamp", None)
    fields.pop("level", None)
    message = fields.pop("event", None)
    record: dict[str, Any] = {"timestamp": _epoch(stamp), "level": level,
                              "message": message if isinstance(message, str) else
                              ("" if message is None else str(message))}
    for name in _COLUMNS:
        value = fields.pop(name, None)
        record[name] = value if value is None or isinstance(value, str) else str(value)
    record["attributes"] = fields
    return record


class LogKeeper:
    """Keeps log lines for the store within the level and the budget; see the module docstring."""

    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], Any],
        *,
        level: int = 20,
        logger_levels: Mapping[str, int] | None = None,
        per_second: float = 1000.0,
        max_pending: int = 10_000,
        max_batch: int = 5_000,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self.level = level
        self._logger_levels = dict(logger_levels or {})
        self._levels: dict[Any, int] = {}  # logger name -> its store level (resolved once)
        self.rate = per_second
        self._interval_s = 1.0 / per_second if per_second else 0.0
        # A token bucket of one second's worth, in its "generic cell rate" form: the next line may be
        # kept from `_earliest` on; each kept line moves it one interval later.
        self._tolerance = (max(per_second, 1.0) - 1.0) * self._interval_s + 1e-9
        self._clock = clock
        self._due = clock()
        self._earliest = self._due - self._tolerance
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._interval = interval
        self._pending: collections.deque[tuple[int, dict[str, Any]]] = collections.deque()
        self._lock = threading.Lock()  # serialises writes, never taken by __call__
        self._wake = threading.Event()
        self._running = False
        self._pid = -1
        self.stored = 0
        self.not_stored = {"budget": 0, "queue": 0, "error": 0}
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(ref))

    def store_level(self, logger: Any) -> int:
        """The lowest level kept for lines of `logger` (the longest matching prefix wins)."""
        found = self._levels.get(logger)
        if found is None:
            found = self.level
            name = str(logger)
            best = -1
            for prefix, level in self._logger_levels.items():
                if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                    found, best = level, len(prefix)
            if len(self._levels) >= 4096:
                self._levels.clear()
            self._levels[logger] = found
        return found

    def __call__(self, level: int, event_dict: Mapping[str, Any]) -> None:
        """A finished line (redacted): keep it or count why not. Never blocks, never raises."""
        if _unstored():
            return
        if level < (self.store_level(event_dict.get("logger")) if self._logger_levels else self.level):
            return
        if level < WARNING and self._interval_s:
            now = self._clock()
            if now < self._earliest:
                self.not_stored["budget"] += 1
                return
            self._due = max(self._due, now) + self._interval_s
            self._earliest = self._due - self._tolerance
        if len(self._pending) >= self._max_pending:
            self.not_stored["queue"] += 1
            return
        self._pending.append((level, dict(event_dict)))
        if not self._running:
            self._start()

    def pending(self) -> int:
        """Lines waiting for the writer thread."""
        return len(self._pending)

    def _start(self) -> None:
        with self._lock:
            if self._running:
                return
            if self._pid == -1:  # the first start: what is still queued at exit is written then
                ref = weakref.ref(self)
                atexit.register(lambda: _flush(ref))
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="kansoku-log-store", daemon=True).start()
            self._running = True

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write every line kept so far now (the writer thread does it every `interval`)."""
        with self._lock:
            pending = self._pending
            while pending:
                batch: list[tuple[int, dict[str, Any]]] = []
                while pending and len(batch) < self._max_batch:
                    batch.append(pending.popleft())
                try:
                    self._write([record_of(level, fields) for level, fields in batch])
                    self.stored += len(batch)
                except Exception as exc:  # the thread has no caller: count, report, go on
                    self.not_stored["error"] += len(batch)
                    report_internal_error("log-store", exc)

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        self._pid = -1
        self._wake.set()
        self.flush()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._pending.clear()
        self._running = False


def _flush(ref: weakref.ReferenceType[LogKeeper]) -> None:
    keeper = ref()
    if keeper is not None and keeper._pid != -1:
        keeper.flush()


def _forked(ref: weakref.ReferenceType[LogKeeper]) -> None:
    keeper = ref()
    if keeper is not None:
        keeper._after_fork()


class LogStoreCollector:
    """The keeper's counters for Prometheus: `registry.register(LogStoreCollector(keeper))`."""

    def __init__(self, keeper: LogKeeper) -> None:
        self.keeper = keeper

    def describe(self) -> list[Metric]:
        """Nothing to describe ahead: registering must not call collect()."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The counters now."""
        yield CounterMetricFamily("kansoku_logs_stored", "Log lines written to the log store.",
                                  value=self.keeper.stored)
        family = CounterMetricFamily(
            "kansoku_logs_not_stored", "Log lines the log store did not keep: over the INFO budget "
            "(log_store_rate), the queue full, or a store error.", labels=["reason"])
        for reason, count in self.keeper.not_stored.items():
            family.add_metric([reason], count)
        yield family
