"""Windowed counters: right totals, O(1) per event."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kansoku.alerts.window import WindowCounter, WindowCounters


def test_counts_within_the_window_and_forgets_older_minutes() -> None:
    """Events older than the window's minutes drop out of the total."""
    counter = WindowCounter(5)
    base = 60.0 * 1000
    assert counter.add(base) == 1
    assert counter.add(base + 30) == 2
    assert counter.add(base + 4 * 60) == 3
    assert counter.total(base + 5 * 60) == 1  # the first minute left the window
    assert counter.total(base + 9 * 60) == 0
    assert counter.add(base + 3600) == 1


def test_clock_stepping_back_counts_in_the_newest_minute() -> None:
    """A clock that steps back never loses or double-counts an event."""
    counter = WindowCounter(2)
    counter.add(600.0)
    assert counter.add(500.0) == 2
    assert counter.total(600.0 + 60) == 2
    assert counter.total(600.0 + 120) == 0


@given(st.lists(st.integers(min_value=0, max_value=5000), max_size=200),
       st.integers(min_value=1, max_value=30))
def test_matches_brute_force(offsets: list[int], minutes: int) -> None:
    """For increasing times, the total equals a scan of the history (what the chapter did)."""
    counter = WindowCounter(minutes)
    times = sorted(offsets)
    for index, t in enumerate(times):
        total = counter.add(float(t))
        minute = t // 60
        expected = sum(1 for x in times[: index + 1] if x // 60 > minute - minutes)
        assert total == expected


def test_counters_forget_least_recently_used_keys() -> None:
    """The counter table is bounded."""
    counters = WindowCounters(max_keys=3)
    for key in "abcd":
        counters.add(key, 5, 0.0)
    assert len(counters) == 3
