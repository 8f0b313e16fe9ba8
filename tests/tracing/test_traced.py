"""`traced` at every level on functions, coroutines, generators and async generators."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from kansoku import debug, tracing
from kansoku.redact import REDACTED
from kansoku.tracing import TraceLevel, traced

SHAPES = ("function", "coroutine", "generator", "asyncgen")
Captured = list[tuple[BaseException, dict[str, Any]]]


def build(shape: str, level: TraceLevel, fail: bool, started: list[str]) -> Callable[..., Any]:
    """A traced op of `shape` returning/yielding x*2 (x items for generators), or failing at the end."""
    name = f"op.{shape}"
    if shape == "function":
        @traced(level=level, name=name)
        def op(x: int, password: str) -> int:
            started.append(shape)
            bearer = "Bearer abcdefghijklmnopqrstuvwxyz"  # a secret by value
            api_key = "k-live-123"  # a secret by name
            if fail:
                raise ValueError(f"bad x={x} password={password}")
            return x * 2 + len(bearer + api_key) * 0
        return op
    if shape == "coroutine":
        @traced(level=level, name=name)
        async def op_async(x: int, password: str) -> int:
            started.append(shape)
            bearer = "Bearer abcdefghijklmnopqrstuvwxyz"
            api_key = "k-live-123"
            await asyncio.sleep(0)
            if fail:
                raise ValueError(f"bad x={x} password={password}")
            return x * 2 + len(bearer + api_key) * 0
        return op_async
    if shape == "generator":
        @traced(level=level, name=name)
        def op_gen(x: int, password: str) -> Iterator[int]:
            started.append(shape)
            bearer = "Bearer abcdefghijklmnopqrstuvwxyz"
            api_key = "k-live-123"
            for i in range(x):
                yield i * 2 + len(bearer + api_key) * 0
            if fail:
                raise ValueError(f"bad x={x} password={password}")
        return op_gen

    @traced(level=level, name=name)
    async def op_agen(x: int, password: str) -> AsyncIterator[int]:
        started.append(shape)
        bearer = "Bearer abcdefghijklmnopqrstuvwxyz"
        api_key = "k-live-123"
        for i in range(x):
            await asyncio.sleep(0)
            yield i * 2 + len(bearer + api_key) * 0
        if fail:
            raise ValueError(f"bad x={x} password={password}")
    return op_agen


def run(shape: str, op: Callable[..., Any], *args: Any) -> Any:
    """Call `op` to completion the way its shape is consumed."""
    if shape == "function":
        return op(*args)
    if shape == "coroutine":
        return asyncio.run(op(*args))
    if shape == "generator":
        return list(op(*args))

    async def collect() -> list[int]:
        return [item async for item in op(*args)]

    return asyncio.run(collect())


EXPECTED = {"function": 6, "coroutine": 6, "generator": [0, 2, 4], "asyncgen": [0, 2, 4]}
SHAPE_CHECK: dict[str, Callable[[Any], bool]] = {
    "function": inspect.isfunction, "coroutine": inspect.iscoroutinefunction,
    "generator": inspect.isgeneratorfunction, "asyncgen": inspect.isasyncgenfunction}


@pytest.mark.parametrize("level", list(TraceLevel))
@pytest.mark.parametrize("shape", SHAPES)
def test_success_at_every_level(
    shape: str, level: TraceLevel, provider: TracerProvider, exporter: InMemorySpanExporter, captured: Captured
) -> None:
    """Results unchanged; a span (from PERFORMANCE) with arguments (from DETAILED); summary fed."""
    tracing.configure(provider=provider, level=TraceLevel.VERBOSE)  # the ceiling: the function's level applies
    started: list[str] = []
    op = build(shape, level, False, started)
    assert SHAPE_CHECK[shape](op)
    assert run(shape, op, 3, "hunter2") == EXPECTED[shape]
    assert started == [shape]
    spans = exporter.get_finished_spans()
    summary = debug.current().performance.summary()
    if level < TraceLevel.PERFORMANCE:
        assert spans == ()
        assert summary == {}
    else:
        [span] = spans
        assert span.name == f"op.{shape}"
        assert span.status.status_code is StatusCode.UNSET
        attributes = dict(span.attributes or {})
        expected: dict[str, Any] = {"code.function": f"build.<locals>.{_func_name(shape)}",
                                    "code.namespace": __name__}
        if level >= TraceLevel.DETAILED:
            expected |= {"kansoku.args.x": 3, "kansoku.args.password": REDACTED}
        assert attributes == expected
        assert summary[f"op.{shape}"]["count"] == 1
    assert captured == []


def _func_name(shape: str) -> str:
    return {"function": "op", "coroutine": "op_async", "generator": "op_gen", "asyncgen": "op_agen"}[shape]


@pytest.mark.parametrize("level", list(TraceLevel))
@pytest.mark.parametrize("shape", SHAPES)
def test_failure_at_every_level(
    shape: str, level: TraceLevel, provider: TracerProvider, exporter: InMemorySpanExporter, captured: Captured
) -> None:
    """The same exception comes out; snapshot from ERROR_ONLY; locals only at VERBOSE; all redacted."""
    tracing.configure(provider=provider, level=TraceLevel.VERBOSE)  # the ceiling: the function's level applies
    op = build(shape, level, True, [])
    with pytest.raises(ValueError, match=r"^bad x=3 password=hunter2$") as info:
        run(shape, op, 3, "hunter2")
    spans = exporter.get_finished_spans()
    if level is TraceLevel.DISABLED:
        assert (spans, captured) == ((), [])
        return
    [(exc, snapshot)] = captured
    assert exc is info.value
    assert snapshot["function"] == f"op.{shape}"
    assert snapshot["level"] == level.name
    assert snapshot["exception"] == {"type": "ValueError", "message": "bad x=3 password=[REDACTED]"}
    assert snapshot["arguments"] == {"x": 3, "password": REDACTED}
    inner = snapshot["frames"][-1]
    assert inner["function"] == f"build.<locals>.{_func_name(shape)}" and inner["in_app"]
    if level is TraceLevel.VERBOSE:
        assert inner["locals"]["bearer"] == f"Bearer {REDACTED}"
        assert inner["locals"]["api_key"] == REDACTED
        assert inner["locals"]["password"] == REDACTED
        assert inner["locals"]["x"] == 3
    else:
        assert all("locals" not in frame for frame in snapshot["frames"])
    assert "hunter2" not in repr(snapshot)
    if level < TraceLevel.PERFORMANCE:
        assert spans == ()
        return
    [span] = spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: bad x=3 password=[REDACTED]"
    assert [event.name for event in span.events] == ["exception"]
    assert (snapshot["trace_id"], snapshot["span_id"]) == (
        format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"))


@pytest.mark.parametrize("shape", ["generator", "asyncgen"])
def test_generators_stay_lazy_and_the_span_covers_the_iteration(
    shape: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Calling a traced generator runs nothing; its span starts at the first item and ends at the last."""
    tracing.configure(provider=provider)
    started: list[str] = []
    op = build(shape, TraceLevel.PERFORMANCE, False, started)
    made = op(2, "x")
    assert started == []
    assert exporter.get_finished_spans() == ()
    assert debug.current().performance.summary() == {}
    if shape == "generator":
        assert next(made) == 0
        assert started == [shape] and exporter.get_finished_spans() == ()
        assert list(made) == [2]
    else:
        async def consume() -> None:
            assert await made.__anext__() == 0
            assert started == [shape] and exporter.get_finished_spans() == ()
            assert [item async for item in made] == [2]

        asyncio.run(consume())
    assert len(exporter.get_finished_spans()) == 1


def test_generator_span_is_current_only_while_the_generator_runs(provider: TracerProvider) -> None:
    """Between items the consumer's context is back: the generator's span does not leak into it."""
    tracing.configure(provider=provider)
    inside: list[int] = []

    @traced()
    def numbers() -> Iterator[int]:
        for i in range(2):
            inside.append(trace.get_current_span().get_span_context().span_id)
            yield i

    outside = []
    for _ in numbers():
        outside.append(trace.get_current_span().get_span_context().span_id)
    assert inside[0] == inside[1] != 0
    assert outside == [0, 0]


def test_generator_send_throw_close_and_return_value_pass_through(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """send(), throw() and close() reach the wrapped generator; `return` still gives the value."""
    tracing.configure(provider=provider)
    closed: list[list[str]] = []

    @traced()
    def echo() -> Generator[Any, str, None]:
        received: list[str] = []
        try:
            while True:
                value = yield len(received)
                received.append(value)
        except KeyError:
            yield "caught"
        finally:
            closed.append(received)

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.throw(KeyError("k")) == "caught"
    gen.close()
    assert closed == [["a"]]
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET

    @traced()
    def producer() -> Generator[int, None, int]:
        yield 1
        return 42

    def consumer() -> Generator[int, None, None]:
        result = yield from producer()
        yield result

    assert list(consumer()) == [1, 42]


def test_async_generator_asend_athrow_aclose_pass_through(provider: TracerProvider) -> None:
    """asend(), athrow() and aclose() reach the wrapped async generator."""
    tracing.configure(provider=provider)
    closed: list[list[str]] = []

    @traced()
    async def echo() -> AsyncGenerator[Any, str]:
        received: list[str] = []
        try:
            while True:
                value = yield len(received)
                received.append(value)
        except KeyError:
            yield "caught"
        finally:
            closed.append(received)

    async def drive() -> None:
        gen = echo()
        assert await gen.__anext__() == 0
        assert await gen.asend("a") == 1
        assert await gen.athrow(KeyError("k")) == "caught"
        await gen.aclose()

    asyncio.run(drive())
    assert closed == [["a"]]


def test_coroutine_is_awaited_not_returned(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """The chapter's async path returned an un-awaited coroutine; ours awaits it inside the span."""
    tracing.configure(provider=provider)

    @traced()
    async def inner() -> str:
        await asyncio.sleep(0)
        return "value"

    assert asyncio.run(inner()) == "value"
    [span] = exporter.get_finished_spans()
    assert span.end_time is not None


def test_nested_failure_takes_one_snapshot_from_the_innermost(
    provider: TracerProvider, exporter: InMemorySpanExporter, captured: Captured
) -> None:
    """Outer and inner spans both fail; the snapshot is taken once, by the innermost function."""
    tracing.configure(provider=provider)

    @traced(name="inner")
    def inner() -> None:
        raise LookupError("missing")

    @traced(name="outer")
    def outer() -> None:
        inner()

    with pytest.raises(LookupError):
        outer()
    inner_span, outer_span = exporter.get_finished_spans()
    assert inner_span.parent is not None and outer_span.context is not None
    assert inner_span.parent.span_id == outer_span.context.span_id
    assert [s.status.status_code for s in (inner_span, outer_span)] == [StatusCode.ERROR, StatusCode.ERROR]
    assert [snapshot["function"] for _, snapshot in captured] == ["inner"]
    assert debug.snapshot_of(captured[0][0]) is captured[0][1]


def test_global_level_is_read_at_call_time_and_a_lower_function_level_wins(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Decorate first, configure later: the global level applies; a function's own lower level wins."""

    @traced(name="follows")
    def follows(card: str) -> None:
        pass

    @traced(level="performance", name="pinned")
    def pinned(card: str) -> None:
        pass

    tracing.configure(provider=provider, level="DETAILED")
    follows("4111 1111 1111 1111")
    pinned("4111 1111 1111 1111")
    tracing.configure(provider=provider, level=TraceLevel.DISABLED)
    follows("x")
    first, second = exporter.get_finished_spans()
    assert (first.name, (first.attributes or {})["kansoku.args.card"]) == ("follows", "[REDACTED CARD]")
    assert (second.name, "kansoku.args.card" in (second.attributes or {})) == ("pinned", False)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_global_level_is_a_ceiling(
    shape: str, provider: TracerProvider, exporter: InMemorySpanExporter, captured: Captured
) -> None:
    """Global ERROR_ONLY: a function marked VERBOSE captures no locals and makes no span; DISABLED: nothing."""
    tracing.configure(provider=provider, level="ERROR_ONLY")
    op = build(shape, TraceLevel.VERBOSE, True, [])
    with pytest.raises(ValueError, match="bad x=3"):
        run(shape, op, 3, "hunter2")
    [(_, snapshot)] = captured
    assert snapshot["level"] == "ERROR_ONLY"
    assert all("locals" not in frame for frame in snapshot["frames"])
    assert exporter.get_finished_spans() == ()
    tracing.configure(provider=provider, level="DISABLED")
    with pytest.raises(ValueError, match="bad x=3"):
        run(shape, op, 3, "hunter2")
    assert (len(captured), exporter.get_finished_spans()) == (1, ())


def test_detailed_arguments_are_bounded_and_json(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """Non-primitive arguments become bounded JSON; `self` is left out; secrets inside are redacted."""
    tracing.configure(provider=provider, level="DETAILED")

    class Service:
        @traced(level="DETAILED", name="svc.save")
        def save(self, payload: dict[str, Any], notes: str) -> None:
            pass

    Service().save({"user": "ann", "token": "t-1", "items": list(range(500))}, "n" * 5000)
    [span] = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert "kansoku.args.self" not in attributes
    payload = str(attributes["kansoku.args.payload"])
    assert payload.startswith('{"user":"ann","token":"[REDACTED]","items":[0,1,2')
    assert len(payload) <= 1024
    assert len(str(attributes["kansoku.args.notes"])) <= 1024


def test_unconfigured_traced_is_a_plain_call_that_feeds_the_summary() -> None:
    """With nothing configured there are no spans, but the call works and is timed."""

    @traced(name="plain")
    def plain(x: int) -> int:
        return x + 1

    assert [plain(i) for i in range(5)] == [1, 2, 3, 4, 5]
    assert debug.current().performance.summary()["plain"]["count"] == 5


def test_bad_level_fails_at_decoration_with_the_fix() -> None:
    """An unknown level name, or `@traced` without parentheses, fails at once and says why."""
    with pytest.raises(ValueError, match="unknown trace level 'LOUD'"):
        traced(level="LOUD")
    with pytest.raises(TypeError, match=r"@traced instead of @traced\(\)"):
        traced(lambda: None)  # type: ignore[arg-type]
