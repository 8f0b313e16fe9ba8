"""One wrapper builder: every kansoku decorator keeps the function's shape and sees a generator's
whole iteration (its end and its failures), not only the call that creates it."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kansoku import debug, logs
from kansoku.metrics import timed, track_business_metric
from kansoku.runtime import track_errors
from kansoku.testing import capture_logs
from kansoku.tracing import traced

LABELS = {"function": "rows", "module": "shop"}


def _calls(registry: CollectorRegistry, status: str = "success") -> float | None:
    return registry.get_sample_value("function_calls_total", {**LABELS, "status": status})


def _observations(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("function_duration_seconds_count", LABELS)


def test_timed_generator_measures_its_iteration() -> None:
    """A timed generator records when its iteration ends (not when it is created), with its outcome."""
    registry = CollectorRegistry()

    @timed("rows", module="shop", slow_ms=60_000.0, registry=registry)
    def rows(n: int, fail: bool = False) -> Iterator[int]:
        yield from range(n)
        if fail:
            raise LookupError("gone")

    stream = rows(3)
    assert _observations(registry) in (None, 0.0)  # created, not yet iterated
    assert next(stream) == 0
    assert _observations(registry) in (None, 0.0)  # still iterating
    assert list(stream) == [1, 2]
    assert (_observations(registry), _calls(registry)) == (1.0, 1.0)
    with pytest.raises(LookupError, match="gone"):
        list(rows(2, fail=True))
    assert (_observations(registry), _calls(registry, "LookupError")) == (2.0, 1.0)


async def test_timed_async_generator_measures_its_iteration() -> None:
    """A timed async generator records when its iteration ends, with the exception raised inside it."""
    registry = CollectorRegistry()

    @timed("rows", module="shop", slow_ms=60_000.0, registry=registry)
    async def rows(n: int, fail: bool = False) -> AsyncIterator[int]:
        for i in range(n):
            yield i
        if fail:
            raise LookupError("gone")

    stream = rows(3)
    assert await anext(stream) == 0
    assert _observations(registry) in (None, 0.0)
    assert [i async for i in stream] == [1, 2]
    assert (_observations(registry), _calls(registry)) == (1.0, 1.0)
    with pytest.raises(LookupError, match="gone"):
        _ = [i async for i in rows(1, fail=True)]
    assert (_observations(registry), _calls(registry, "LookupError")) == (2.0, 1.0)


def test_log_execution_time_logs_a_generator_when_its_iteration_ends() -> None:
    """log_execution_time on a generator: no line at creation, "completed" at the end, "failed" on
    the exception raised while iterating."""

    @logs.log_execution_time("export", threshold_ms=60_000.0)
    def export(fail: bool) -> Iterator[str]:
        yield "header"
        if fail:
            raise OSError("disk full")
        yield "row"

    with capture_logs() as records:
        stream = export(False)
        assert next(stream) == "header"
        assert records == []
        assert list(stream) == ["row"]
        with pytest.raises(OSError, match="disk full"):
            list(export(True))
    assert [(r["event"], r["success"]) for r in records] == [("export completed", True), ("export failed", False)]


async def test_track_errors_sees_failures_inside_an_async_generator() -> None:
    """track_errors on an async generator records the exception raised during its iteration."""

    @track_errors("business_logic")
    async def pages() -> AsyncIterator[int]:
        yield 1
        raise ValueError("page 2 is broken")

    with capture_logs() as records, pytest.raises(ValueError, match="page 2"):
        _ = [p async for p in pages()]
    (record,) = [r for r in records if r.get("mechanism") == "track_errors"]
    assert record["function"].endswith("pages") and record["category"] == "business_logic"


def test_business_metric_counts_a_generator_once_it_finishes() -> None:
    """track_business_metric on a generator adds its value when the iteration succeeds, not before."""
    registry = CollectorRegistry()

    @track_business_metric("exports", 2.0, registry=registry)
    def export() -> Iterator[int]:
        yield 1

    stream = export()
    assert registry.get_sample_value("exports_total") in (None, 0.0)
    assert list(stream) == [1]
    assert registry.get_sample_value("exports_total") == 2.0


def _gen() -> Iterator[int]:
    yield 1


async def _agen() -> AsyncIterator[int]:
    yield 1


async def _coro() -> int:
    return 1


def _func() -> int:
    return 1


DECORATORS: dict[str, Callable[[], Callable[[Any], Any]]] = {
    "timed": lambda: timed(registry=CollectorRegistry()),
    "track_business_metric": lambda: track_business_metric("calls", registry=CollectorRegistry()),
    "log_execution_time": lambda: logs.log_execution_time(),
    "log_database_operation": lambda: logs.log_database_operation(table="t"),
    "track_errors": lambda: track_errors(),
    "traced": lambda: traced(),
    "memory_profile": lambda: debug.memory_profile(),
}
SHAPES: dict[str, Callable[..., Any]] = {"function": _func, "coroutine": _coro, "generator": _gen,
                                         "async generator": _agen}


def _shape(func: Callable[..., Any]) -> str:
    if inspect.isasyncgenfunction(func):
        return "async generator"
    if inspect.iscoroutinefunction(func):
        return "coroutine"
    return "generator" if inspect.isgeneratorfunction(func) else "function"


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", list(DECORATORS))
def test_every_decorator_keeps_the_shape(name: str, shape: str) -> None:
    """Each decorator's wrapper is the same kind of callable as the function (frameworks check it)."""
    func = SHAPES[shape]
    wrapped = DECORATORS[name]()(func)
    assert (_shape(wrapped), wrapped.__name__) == (shape, func.__name__)
