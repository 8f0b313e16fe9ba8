"""memory_profile: one log line per call with the RSS delta, and the tracemalloc peak when tracing."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest

from kansoku import debug
from kansoku.debug import memory_profile

from .conftest import Lines


def test_sync_call_logs_rss_and_duration(log_lines: Lines) -> None:
    """A profiled call logs function, duration and RSS figures; the result is unchanged."""

    @memory_profile(name="build")
    def build(n: int) -> int:
        return len(bytearray(n))

    assert build(1000) == 1000
    [line] = [line for line in log_lines() if line["event"] == "memory: build"]
    assert (line["level"], line["category"], line["function"]) == ("info", "performance", "build")
    assert line["rss_after_bytes"] > 0 and isinstance(line["rss_delta_bytes"], int)
    assert line["duration_ms"] >= 0
    assert "traced_peak_bytes" not in line or tracemalloc.is_tracing()


def test_tracemalloc_peak_is_reported_when_tracing(log_lines: Lines) -> None:
    """With tracemalloc on, the peak above the starting level is logged (8 MB built and freed)."""

    @memory_profile()
    def spike() -> None:
        block = bytearray(8 * 1024 * 1024)
        del block

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        spike()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    [line] = [line for line in log_lines() if line.get("function", "").endswith("spike")]
    assert line["traced_peak_bytes"] >= 8 * 1024 * 1024
    assert line["traced_delta_bytes"] < 1024 * 1024  # freed before returning


def test_failure_is_logged_and_reraised(log_lines: Lines) -> None:
    """A failing call logs a warning with the error type and the exception goes on unchanged."""

    @memory_profile(name="broken")
    async def broken() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        asyncio.run(broken())
    [line] = [line for line in log_lines() if line["event"] == "memory: broken failed"]
    assert (line["level"], line["error_type"]) == ("warning", "KeyError")


def test_generators_are_measured_over_the_iteration(log_lines: Lines) -> None:
    """Generator and async generator functions stay lazy and log once, when the iteration ends."""

    @memory_profile(name="rows")
    def rows() -> Iterator[int]:
        yield from range(3)

    @memory_profile(name="arows")
    async def arows() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    made = rows()
    assert log_lines() == []
    assert list(made) == [0, 1, 2]

    async def collect() -> list[int]:
        return [i async for i in arows()]

    assert asyncio.run(collect()) == [0, 1, 2]
    assert [line["event"] for line in log_lines()] == ["memory: rows", "memory: arows"]


def test_track_args_follows_the_arguments(debugger: debug.Debugger) -> None:
    """track_args=True tracks each positional argument's lifetime in the memory report."""

    class Batch:
        pass

    @memory_profile(name="load", track_args=True)
    def load(batch: Batch) -> None:
        pass

    batch = Batch()
    load(batch)
    [alive] = debugger.memory.report()["tracked_objects"]["alive"]
    assert alive["name"] == "load:arg0"
