"""Sliding-window event counts that cost O(1) per event, whatever the history.

The chapter's check rebuilt a list of every recent error for each event and rule: O(history). Here
each (rule, group) has a ring of per-minute buckets and a running total; adding an event and
reading the total touch at most the buckets that expired since the last call (amortised O(1)).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["WindowCounter", "WindowCounters"]


class WindowCounter:
    """Events in the last `minutes` whole minutes (the current minute included)."""

    __slots__ = ("_counts", "_minute", "_size", "_total")

    def __init__(self, minutes: int) -> None:
        self._size = max(1, minutes)
        self._counts = [0] * self._size
        self._minute: int | None = None  # the newest minute seen
        self._total = 0

    def _advance(self, minute: int) -> None:
        if self._minute is None:
            self._minute = minute
            return
        if minute <= self._minute:  # same minute, or a clock that stepped back: count in place
            return
        # Clear the buckets of the minutes skipped over; at most the ring's size.
        for passed in range(self._minute + 1, min(minute, self._minute + self._size) + 1):
            slot = passed % self._size
            self._total -= self._counts[slot]
            self._counts[slot] = 0
        self._minute = minute

    def add(self, now: float, n: int = 1) -> int:
        """Count `n` events at time `now`; return the total in the window."""
        minute = int(now // 60)
        self._advance(minute)
        newest = minute if self._minute is None else max(minute, self._minute)
        self._counts[newest % self._size] += n
        self._total += n
        return self._total

    def total(self, now: float) -> int:
        """Events in the window ending at `now`."""
        self._advance(int(now // 60))
        return self._total


class WindowCounters:
    """Counters by key (rule, group), the least recently used dropped past `max_keys`."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._counters: OrderedDict[Hashable, WindowCounter] = OrderedDict()

    def add(self, key: Hashable, minutes: int, now: float) -> int:
        """Count one event for `key`; return the window's total."""
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = WindowCounter(minutes)
            if len(self._counters) > self.max_keys:
                self._counters.popitem(last=False)
        else:
            self._counters.move_to_end(key)
        return counter.add(now)

    def __len__(self) -> int:
        return len(self._counters)
