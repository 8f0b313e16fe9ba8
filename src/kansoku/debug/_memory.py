"""The memory report: process memory, garbage collector, tracemalloc, and tracked object lifetimes."""

from __future__ import annotations

import gc
import itertools
import os
import sys
import time
import tracemalloc
import weakref
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, Final

from kansoku.logs import get_logger

__all__ = ["MemoryTracker"]

log = get_logger("kansoku.debug")
_TRACEMALLOC_FILTERS: Final = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


class MemoryTracker:
    """Collects what the memory report shows; `start()` watches the garbage collector.

    Everything it keeps is bounded: the last `history` collections and finalized objects, at most
    `max_tracked` live tracked objects, the `top` largest allocation sites.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        top: int = 10,
        history: int = 100,
        max_tracked: int = 10_000,
    ) -> None:
        self.clock = clock
        self.top = top
        self.max_tracked = max_tracked
        self.uncollectable_total = 0
        self._gc_events: deque[dict[str, Any]] = deque(maxlen=history)
        self._gc_started = 0.0
        self._tracked: dict[int, dict[str, Any]] = {}
        self._finalized: deque[dict[str, Any]] = deque(maxlen=history)
        self._ids = itertools.count(1)
        self._baseline: tracemalloc.Snapshot | None = None
        self._own_tracemalloc = False

    # --- garbage collector ------------------------------------------------------------------

    def start(self) -> None:
        """Watch every collection (idempotent)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        """Stop watching, and stop tracemalloc if this tracker started it."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._own_tracemalloc:
            self.stop_tracemalloc()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector, on whatever thread triggered it: only appends to a deque
        # (atomic, no lock) and logs in the rare uncollectable case.
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        uncollectable = int(info.get("uncollectable", 0))
        self._gc_events.append({
            "timestamp": self.clock(),
            "generation": info.get("generation", -1),
            "collected": info.get("collected", 0),
            "uncollectable": uncollectable,
            "duration_ms": round((time.perf_counter() - self._gc_started) * 1000, 3),
        })
        if uncollectable > 0:
            self.uncollectable_total += uncollectable
            try:
                log.warning("garbage collector found uncollectable objects", category="performance",
                            uncollectable=uncollectable, generation=info.get("generation", -1),
                            uncollectable_total=self.uncollectable_total)
            except Exception:  # noqa: S110 - an exception here would be printed as unraisable
                pass

    # --- tracemalloc --------------------------------------------------------------------------

    def start_tracemalloc(self, frames: int = 1) -> None:
        """Start tracing allocations (costs memory and time: for debugging sessions)."""
        if not tracemalloc.is_tracing():
            tracemalloc.start(frames)
            self._own_tracemalloc = True

    def stop_tracemalloc(self) -> None:
        """Stop tracing allocations and forget the baseline."""
        tracemalloc.stop()
        self._own_tracemalloc = False
        self._baseline = None

    def set_baseline(self) -> bool:
        """Remember the current allocations; the report then shows the difference. False if not tracing."""
        if not tracemalloc.is_tracing():
            return False
        self._baseline = tracemalloc.take_snapshot().filter_traces(_TRACEMALLOC_FILTERS)
        return True

    def _tracemalloc_report(self) -> dict[str, Any]:
        if not tracemalloc.is_tracing():
            return {"tracing": False}
        current, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot().filter_traces(_TRACEMALLOC_FILTERS)
        top = [
            {"file": stat.traceback[0].filename, "line": stat.traceback[0].lineno,
             "size": stat.size, "count": stat.count}
            for stat in snapshot.statistics("lineno")[: self.top]
        ]
        out: dict[str, Any] = {"tracing": True, "current": current, "peak": peak, "top": top, "diff": None}
        if self._baseline is not None:
            out["diff"] = [
                {"file": stat.traceback[0].filename, "line": stat.traceback[0].lineno,
                 "size": stat.size, "size_diff": stat.size_diff,
                 "count": stat.count, "count_diff": stat.count_diff}
                for stat in snapshot.compare_to(self._baseline, "lineno")[: self.top]
            ]
        return out

    # --- tracked objects ----------------------------------------------------------------------

    def track_object(self, obj: object, name: str | None = None) -> bool:
        """Follow `obj` until it is collected; False if it cannot be weakly referenced or too many are."""
        if len(self._tracked) >= self.max_tracked:
            return False
        key = next(self._ids)
        try:
            finalizer = weakref.finalize(obj, self._on_finalized, key)
        except TypeError:  # int, str, dict... have no weak references
            return False
        finalizer.atexit = False
        self._tracked[key] = {
            "name": name or f"{type(obj).__name__}@{id(obj):x}",
            "type": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "size": sys.getsizeof(obj, 0),
            "created_at": self.clock(),
        }
        return True

    def _on_finalized(self, key: int) -> None:
        info = self._tracked.pop(key, None)
        if info is None:
            return
        now = self.clock()
        ended = {**info, "finalized_at": now, "lifetime_seconds": round(now - info["created_at"], 6)}
        self._finalized.append(ended)
        log.debug("tracked object collected", category="performance", object_name=info["name"],
                  object_type=info["type"], lifetime_seconds=ended["lifetime_seconds"])

    # --- the report ---------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Process memory, GC statistics, uncollectable objects, tracemalloc and tracked objects."""
        now = self.clock()
        alive = sorted(self._tracked.values(), key=lambda item: item["created_at"])
        return {
            "timestamp": now,
            "process": _process_memory(),
            "gc": self._gc_report(),
            "tracemalloc": self._tracemalloc_report(),
            "tracked_objects": {
                "alive_count": len(alive),
                "alive": [{**item, "age_seconds": round(now - item["created_at"], 6)} for item in alive[:100]],
                "finalized": list(self._finalized),
            },
        }

    def _gc_report(self) -> dict[str, Any]:
        garbage = Counter(type(obj).__qualname__ for obj in list(gc.garbage))
        return {
            "enabled": gc.isenabled(),
            "counts": list(gc.get_count()),
            "thresholds": list(gc.get_threshold()),
            "stats": gc.get_stats(),
            "uncollectable_total": self.uncollectable_total,
            "garbage_count": len(gc.garbage),
            "garbage_types": dict(garbage.most_common(self.top)),
            "recent_collections": list(self._gc_events)[-10:],
        }

    def clear_history(self) -> None:
        """Forget the collections and finalized objects seen so far (live tracking continues)."""
        self._gc_events.clear()
        self._finalized.clear()
        self.uncollectable_total = 0
        self._baseline = None


def _process_memory() -> dict[str, Any]:
    try:
        import psutil

        process = psutil.Process()
        info = process.memory_info()
        return {"pid": os.getpid(), "rss": info.rss, "vms": info.vms,
                "percent": round(process.memory_percent(), 3)}
    except Exception as exc:  # sandboxed /proc: report what is missing instead of failing
        return {"pid": os.getpid(), "error": f"{type(exc).__name__}: {exc}"}
