"""Debugging aids (chapter 8.3): performance summary, memory report, `memory_profile`, snapshots.

The performance summary keeps, per function, a bounded streaming sketch instead of every duration:
count, total, mean, min and max are exact; p50, p95 and p99 are within 1 % relative error of the
exact order statistics (see `kansoku.debug._sketch`), whatever the number of calls.

One `Debugger` per runtime holds the summary, the memory tracker and where error snapshots go. A
default one exists before `instrument()`, so `traced`, `timed` (through `record`) and
`track_object` work in plain scripts too; the runtime installs its own with `use()`.
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, Final, ParamSpec, Protocol, TypeVar

from kansoku._delegate import wrap
from kansoku._safety import suppress_internal_errors
from kansoku._worker import BackgroundWorker
from kansoku.debug._memory import MemoryTracker
from kansoku.debug._sketch import DEFAULT_RELATIVE_ERROR, QuantileSketch
from kansoku.debug._snapshot import SnapshotWriter, process_rss
from kansoku.logs import get_logger
from kansoku.redact import Redactor, redactor_for
from kansoku.settings import Settings

__all__ = [
    "SUMMARY_ATTR",
    "Debugger",
    "MemoryTracker",
    "PerformanceStats",
    "SnapshotCapture",
    "current",
    "memory_profile",
    "record",
    "track_object",
    "use",
]

P = ParamSpec("P")
R = TypeVar("R")
QUANTILES: Final = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
SNAPSHOT_ATTR: Final = "__kansoku_snapshot__"
# Set on a function that `traced` or `kansoku.timed` wrapped: its calls are in the performance
# summary already, so a second of these decorators around it does not count them twice.
SUMMARY_ATTR: Final = "__kansoku_in_summary__"
log = get_logger("kansoku.debug")


class SnapshotCapture(Protocol):
    """Where snapshots go: `ErrorTracker.capture` has this shape (the snapshot joins the event)."""

    def __call__(self, exc: BaseException, /, *, snapshot: dict[str, Any], mechanism: str) -> object: ...


class PerformanceStats:
    """Call durations per function name in bounded sketches (at most `max_functions` names)."""

    def __init__(
        self, *, relative_error: float = DEFAULT_RELATIVE_ERROR, max_functions: int = 1000
    ) -> None:
        self.relative_error = relative_error
        self.max_functions = max_functions
        self.dropped = 0  # observations of names past max_functions
        self._sketches: dict[str, QuantileSketch] = {}
        self._lock = threading.Lock()

    def record(self, name: str, seconds: float) -> None:
        """Add one call of `name` that took `seconds`."""
        with self._lock:
            sketch = self._sketches.get(name)
            if sketch is None:
                if len(self._sketches) >= self.max_functions:
                    self.dropped += 1
                    return
                sketch = self._sketches[name] = QuantileSketch(self.relative_error)
            sketch.add(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per function: count, min, max, mean, p50, p95, p99 and total, in seconds."""
        with self._lock:  # copy under the lock, compute outside it: record() is on the request path
            copies = [(name, sketch.copy()) for name, sketch in self._sketches.items()]
        return {name: _describe(sketch) for name, sketch in sorted(copies, key=lambda item: item[0])}

    def clear(self) -> None:
        """Forget every function."""
        with self._lock:
            self._sketches.clear()
            self.dropped = 0


def _describe(sketch: QuantileSketch) -> dict[str, float]:
    out = {"count": float(sketch.count), "min": sketch.min, "max": sketch.max, "mean": sketch.mean}
    for label, q in QUANTILES:
        out[label] = sketch.quantile(q)
    out["total"] = sketch.sum
    return out


class Debugger:
    """The debugging part of a runtime: performance summary, memory tracker, snapshot delivery.

    `capture` receives each error snapshot (the runtime passes the error tracker's `capture`, so the
    snapshot joins the error event); with `settings.snapshot_dir` the snapshots are also written as
    JSON files there by a background thread, keeping the newest `settings.snapshot_keep`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        capture: SnapshotCapture | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.capture = capture
        self.performance = PerformanceStats()
        self.memory = MemoryTracker(clock=clock)
        self.redactor = (
            redactor_for(settings, max_string=min(settings.max_string_length, 1024), max_depth=4, max_items=50)
            if settings else Redactor(max_string=1024, max_depth=4, max_items=50)
        )
        directory = settings.snapshot_dir if settings else None
        self.writer = SnapshotWriter(directory, settings.snapshot_keep) if settings and directory else None
        self._worker = BackgroundWorker("snapshots", maxsize=256) if self.writer else None

    def start(self) -> None:
        """Start watching the garbage collector."""
        self.memory.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop watching, and write the snapshots still queued."""
        self.memory.stop()
        if self._worker is not None:
            self._worker.close(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queued snapshot files are written."""
        return self._worker.flush(timeout) if self._worker is not None else True

    def report_snapshot(self, exc: BaseException, snapshot: dict[str, Any]) -> None:
        """Deliver an error snapshot: on the exception, to `capture`, and to the snapshot files."""
        try:  # the error tracker may capture this exception later on its own path
            setattr(exc, SNAPSHOT_ATTR, snapshot)
        except (AttributeError, TypeError):
            pass
        if self.capture is not None:
            with suppress_internal_errors("debug.capture"):
                self.capture(exc, snapshot=snapshot, mechanism="traced")
        if self.writer is not None and self._worker is not None:
            writer = self.writer
            self._worker.submit(lambda: writer.write(snapshot))

    def clear(self) -> None:
        """Clear the performance summary and the memory history (the API's clear-history)."""
        self.performance.clear()
        self.memory.clear_history()


_current = Debugger()


def current() -> Debugger:
    """The debugger in use (the runtime's, or a default one before `instrument()`)."""
    return _current


def use(debugger: Debugger | None) -> None:
    """Make `debugger` the one in use; None restores a fresh default."""
    global _current
    _current = debugger if debugger is not None else Debugger()


def record(function_name: str, seconds: float) -> None:
    """Add one call to the performance summary (used by `traced` and `kansoku.timed`)."""
    _current.performance.record(function_name, seconds)


def track_object(obj: object, name: str | None = None) -> bool:
    """Follow an object's lifetime in the memory report; False if it cannot be weakly referenced."""
    return _current.memory.track_object(obj, name)


def snapshot_of(exc: BaseException) -> dict[str, Any] | None:
    """The error snapshot taken when `exc` left a traced function, if any."""
    value = getattr(exc, SNAPSHOT_ATTR, None)
    return value if isinstance(value, dict) else None


# --- memory_profile ---------------------------------------------------------------------------


class _Measure:
    """RSS and tracemalloc figures around one call, logged when it ends."""

    __slots__ = ("label", "rss", "start", "traced")

    def __init__(self, label: str) -> None:
        self.label = label
        self.rss = process_rss()
        self.traced: int | None = None
        if tracemalloc.is_tracing():
            self.traced = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()  # process-wide: concurrent profiled calls share the peak
        self.start = time.perf_counter()

    def resume(self) -> object:
        return None

    def suspend(self, token: object) -> None:
        pass

    def done(self, exc: BaseException | None) -> None:
        with suppress_internal_errors("debug.memory_profile"):
            duration_ms = round((time.perf_counter() - self.start) * 1000, 3)
            rss = process_rss()
            fields: dict[str, Any] = {"function": self.label, "duration_ms": duration_ms,
                                      "rss_after_bytes": rss, "category": "performance"}
            if rss is not None and self.rss is not None:
                fields["rss_delta_bytes"] = rss - self.rss
            if self.traced is not None and tracemalloc.is_tracing():
                now, peak = tracemalloc.get_traced_memory()
                fields["traced_delta_bytes"] = now - self.traced
                fields["traced_peak_bytes"] = max(peak - self.traced, 0)
            if exc is None:
                log.info(f"memory: {self.label}", **fields)
            else:
                log.warning(f"memory: {self.label} failed", error_type=type(exc).__name__, **fields)


def memory_profile(
    name: str | None = None, *, track_args: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Log each call's RSS delta (and tracemalloc peak when tracing) with its duration.

    Works on functions, coroutine functions, generator and async generator functions (measured
    over the whole iteration). `track_args` also follows the arguments' lifetimes
    (see `track_object`).
    """

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        label = name or f"{func.__module__}.{func.__qualname__}"

        def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Measure:
            if track_args:
                for index, arg in enumerate(args):
                    track_object(arg, f"{label}:arg{index}")
            return _Measure(label)

        return wrap(func, begin)

    return decorator
