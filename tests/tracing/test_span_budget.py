"""The local store's budget of traces per second: kept, dropped and counted; errors, slow, children."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from kansoku import tracing
from kansoku.exceptions import ConfigError
from kansoku.settings import load_settings
from kansoku.store import create_store_engine
from kansoku.store.tables import metadata, spans
from kansoku.tracing import RequestTracer, StoreSpanProcessor, configure_tracing, traced
from kansoku.tracing._span_store import EARLY_DECISION_SPANS, MAX_WAITING_SPANS, SpanStoreCollector

SECOND = 1_000_000_000


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The budget's clock, standing still until a test moves it."""
    return Clock()


@pytest.fixture
def stored() -> InMemorySpanExporter:
    """What the budget hands on (the store's exporter in production)."""
    return InMemorySpanExporter()


def make_provider(stored: InMemorySpanExporter, clock: Clock, rate: float = 3.0) -> tuple[TracerProvider,
                                                                                       StoreSpanProcessor]:
    """A provider whose only processor is the budget (rate traces/s, slow from 1 s) over `stored`."""
    provider = configure_tracing(load_settings(store_spans=False), None, "budget")
    budget = StoreSpanProcessor(downstream=SimpleSpanProcessor(stored), traces_per_second=rate,
                                slow_seconds=1.0, clock=clock)
    provider.add_span_processor(budget)
    return provider, budget


@pytest.fixture
def provider(stored: InMemorySpanExporter, clock: Clock) -> Iterator[TracerProvider]:
    """A provider with a budget of 3 traces per second."""
    made, _ = make_provider(stored, clock)
    yield made
    made.shutdown()


def budget_of(provider: TracerProvider) -> StoreSpanProcessor:
    """The provider's budget processor."""
    [budget] = provider._active_span_processor._span_processors
    assert isinstance(budget, StoreSpanProcessor)
    return budget


def request(tracer: RequestTracer, status: int = 200, exc: BaseException | None = None,
            headers: list[tuple[bytes, bytes]] | None = None) -> str:
    """One request through the server span; returns its trace id."""
    handle = tracer.start({"type": "http", "method": "GET", "path": "/items/1", "headers": headers or []})
    assert handle is not None
    tracer.finish(handle, status, "/items/{item_id}", exc)
    return handle.trace_id


def trace_ids(stored: InMemorySpanExporter) -> list[str]:
    """The trace id of every span handed on, in order."""
    return [format(span.context.trace_id, "032x") for span in stored.get_finished_spans() if span.context]


def names(spans: Sequence[ReadableSpan]) -> list[str]:
    """The names of spans, in order."""
    return [span.name for span in spans]


def test_traces_within_the_budget_are_all_kept(
    provider: TracerProvider, stored: InMemorySpanExporter
) -> None:
    """Up to a second's worth of traces at once, every one is kept and counted as stored."""
    tracer = RequestTracer(provider)
    ids = [request(tracer) for _ in range(3)]
    assert trace_ids(stored) == ids
    assert names(stored.get_finished_spans()) == ["GET /items/{item_id}"] * 3
    budget = budget_of(provider)
    assert (budget.stored_traces, budget.not_stored_traces, budget.not_stored_spans) == (3, 0, 0)


def test_traces_over_the_budget_are_dropped_counted_and_kept_again_as_it_refills(
    provider: TracerProvider, stored: InMemorySpanExporter, clock: Clock
) -> None:
    """Past the budget traces are not stored but counted; a third of a second later one more fits."""
    tracer = RequestTracer(provider)
    ids = [request(tracer) for _ in range(5)]
    assert trace_ids(stored) == ids[:3]
    clock.now += 0.2
    request(tracer)
    clock.now += 0.14  # a third of a second since the bucket emptied: one token
    late = request(tracer)
    assert trace_ids(stored) == [*ids[:3], late]
    budget = budget_of(provider)
    assert (budget.stored_traces, budget.not_stored_traces, budget.not_stored_spans) == (4, 3, 3)


def test_budget_counters_are_exported_to_prometheus(stored: InMemorySpanExporter, clock: Clock) -> None:
    """The runtime's registry shows stored and not stored traces, and spans by reason."""
    provider, budget = make_provider(stored, clock, rate=1.0)
    registry = CollectorRegistry()
    registry.register(SpanStoreCollector(budget))
    tracer = RequestTracer(provider)
    for _ in range(4):
        request(tracer)
    assert registry.get_sample_value("kansoku_traces_stored_total") == 1
    assert registry.get_sample_value("kansoku_traces_not_stored_total") == 3
    assert registry.get_sample_value("kansoku_spans_not_stored_total", {"reason": "budget"}) == 3
    assert registry.get_sample_value("kansoku_spans_not_stored_total", {"reason": "overflow"}) == 0
    provider.shutdown()


def test_failed_and_slow_traces_are_always_kept(
    provider: TracerProvider, stored: InMemorySpanExporter
) -> None:
    """Over the budget, a 5xx, an exception and a root slower than the threshold are still stored."""
    tracer = RequestTracer(provider)
    for _ in range(3):
        request(tracer)
    stored.clear()
    unavailable = request(tracer, status=503)
    failed = request(tracer, status=500, exc=ValueError("boom"))
    request(tracer, status=404)  # a client error is not the service's: subject to the budget
    sdk = provider.get_tracer("job")
    slow = sdk.start_span("nightly import", start_time=10 * SECOND)
    slow.end(end_time=11 * SECOND)
    quick = sdk.start_span("quick job", start_time=10 * SECOND)
    quick.end(end_time=10 * SECOND + SECOND // 2)
    assert names(stored.get_finished_spans()) == ["GET /items/{item_id}"] * 2 + ["nightly import"]
    assert trace_ids(stored)[:2] == [unavailable, failed]
    assert [span.status.status_code for span in stored.get_finished_spans()] == [StatusCode.ERROR] * 2 + [
        StatusCode.UNSET]


def test_children_wait_for_their_root_and_follow_its_decision(
    provider: TracerProvider, stored: InMemorySpanExporter
) -> None:
    """Child spans (traced calls, SDK spans) of a kept trace are stored with it; of a dropped one, never."""
    tracing.configure(provider=provider)

    @traced(name="load")
    def load() -> None:
        with provider.get_tracer("db").start_as_current_span("SELECT item"):
            pass

    tracer = RequestTracer(provider)
    for i in range(3):  # the budget is spent on these
        handle = tracer.start({"type": "http", "method": "GET", "path": "/", "headers": []})
        load()
        assert len(stored.get_finished_spans()) == 3 * i  # the children wait for the root
        assert budget_of(provider).waiting() == 2
        tracer.finish(handle, 200, "/", None)
    assert names(stored.get_finished_spans()) == ["SELECT item", "load", "GET /"] * 3
    server, child = stored.get_finished_spans()[2], stored.get_finished_spans()[1]
    assert child.parent is not None and server.context is not None
    assert child.parent.span_id == server.context.span_id
    stored.clear()
    handle = tracer.start({"type": "http", "method": "GET", "path": "/", "headers": []})
    load()
    tracer.finish(handle, 200, "/", None)
    budget = budget_of(provider)
    assert stored.get_finished_spans() == ()
    assert (budget.not_stored_traces, budget.not_stored_spans, budget.waiting()) == (1, 3, 0)


def test_spans_ending_after_their_root_follow_its_decision(
    provider: TracerProvider, stored: InMemorySpanExporter
) -> None:
    """A span outliving its request (a background task) is stored only if its trace was."""
    tracer = RequestTracer(provider)
    sdk = provider.get_tracer("tasks")
    late = []
    for _ in range(4):  # three kept, the fourth over the budget
        handle = tracer.start({"type": "http", "method": "GET", "path": "/", "headers": []})
        late.append(sdk.start_span("send e-mail"))
        tracer.finish(handle, 202, "/", None)
    for span in late:
        span.end()
    assert names(stored.get_finished_spans()) == ["GET /"] * 3 + ["send e-mail"] * 3
    assert budget_of(provider).not_stored_spans == 2
    assert budget_of(provider).waiting() == 0


def test_a_long_trace_is_decided_early_and_keeps_streaming(
    provider: TracerProvider, stored: InMemorySpanExporter
) -> None:
    """A root with many spans (a batch job) is decided by the budget when 512 wait; the rest follow."""
    sdk = provider.get_tracer("batch")
    with sdk.start_as_current_span("process dataset"):
        for i in range(EARLY_DECISION_SPANS - 1):
            sdk.start_span(f"item {i}").end()
        assert stored.get_finished_spans() == ()
        sdk.start_span("item 511").end()
        assert len(stored.get_finished_spans()) == EARLY_DECISION_SPANS
        sdk.start_span("item 512").end()
    assert names(stored.get_finished_spans())[-2:] == ["item 512", "process dataset"]
    assert budget_of(provider).stored_traces == 1


def test_waiting_spans_are_bounded(provider: TracerProvider, stored: InMemorySpanExporter) -> None:
    """Spans whose roots never end here are discarded oldest first past the bound, and counted."""
    sdk = provider.get_tracer("orphans")
    for _ in range(MAX_WAITING_SPANS + 10):
        root = sdk.start_span("never ends")  # its children wait for it forever
        with trace.use_span(root, end_on_exit=False):
            sdk.start_span("child").end()
    budget = budget_of(provider)
    assert budget.waiting() == MAX_WAITING_SPANS
    assert budget.overflow_spans == 10
    assert stored.get_finished_spans() == ()


def test_no_limit_when_the_rate_is_zero(stored: InMemorySpanExporter, clock: Clock) -> None:
    """trace_store_rate=0 stores every trace, and children go straight through without waiting."""
    provider, budget = make_provider(stored, clock, rate=0.0)
    tracer = RequestTracer(provider)
    sdk = provider.get_tracer("t")
    for _ in range(20):
        handle = tracer.start({"type": "http", "method": "GET", "path": "/", "headers": []})
        sdk.start_span("child").end()
        assert budget.waiting() == 0
        tracer.finish(handle, 200, "/", None)
    assert len(stored.get_finished_spans()) == 40
    assert (budget.stored_traces, budget.not_stored_traces) == (20, 0)
    provider.shutdown()


class CountingHeaders(list[tuple[bytes, bytes]]):
    """ASGI headers that count how often they are read."""

    reads = 0

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        self.reads += 1
        return super().__iter__()


def test_requests_over_the_budget_never_have_their_attributes_made(
    provider: TracerProvider, stored: InMemorySpanExporter
) -> None:
    """The server span's attributes are made from the scope only for a span handed on."""
    tracer = RequestTracer(provider)
    kept = CountingHeaders([(b"host", b"shop.example"), (b"user-agent", b"curl")])
    dropped = CountingHeaders([(b"host", b"shop.example"), (b"user-agent", b"curl")])
    request(tracer, headers=kept)
    request(tracer)
    request(tracer)
    request(tracer, headers=dropped)
    assert (kept.reads, dropped.reads) == (2, 1)  # the traceparent look-up; then the attributes
    attributes = stored.get_finished_spans()[0].attributes or {}
    assert (attributes["server.address"], attributes["user_agent.original"]) == ("shop.example", "curl")


def test_settings_give_the_runtime_a_budgeted_store(tmp_path: Path) -> None:
    """configure_tracing with a store: the budget from trace_store_rate, counters in the registry, rows."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'k.db'}")
    metadata.create_all(engine)
    registry = CollectorRegistry()
    provider = configure_tracing(load_settings(trace_store_rate=2.0, slow_threshold_ms=250.0), engine,
                                 "shop", registry=registry)
    assert budget_of(provider).rate == 2.0
    tracer = RequestTracer(provider)
    kept = request(tracer)
    request(tracer, status=500)
    assert provider.force_flush(5000)
    with engine.connect() as conn:
        rows = conn.execute(select(spans.c.trace_id, spans.c.status)).all()
    assert (kept, "UNSET") in [tuple(row) for row in rows] and len(rows) == 2
    assert registry.get_sample_value("kansoku_traces_stored_total") == 2
    provider.shutdown()


def test_trace_store_rate_is_a_documented_setting() -> None:
    """KANSOKU_TRACE_STORE_RATE: 50 per second by default, never negative, in the configuration docs."""
    assert load_settings().trace_store_rate == 50.0
    with pytest.raises(ConfigError, match="trace_store_rate"):
        load_settings(trace_store_rate=-1)
    docs = Path(__file__).resolve().parents[2] / "docs"
    assert "`trace_store_rate`" in (docs / "configuration.md").read_text()
    assert "KANSOKU_TRACE_STORE_RATE" in (docs / "tracing.md").read_text()



def test_forked_worker_gets_a_free_lock_and_no_parent_spans() -> None:
    """A child forked while another thread holds the processor's lock can still use it, and the
    spans its parent had waiting are not the child's."""
    import os
    import threading

    processor = StoreSpanProcessor(downstream=SimpleSpanProcessor(InMemorySpanExporter()))
    processor._waiting[1] = []
    processor._waiting_count = 1
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with processor._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the lock is free and nothing is waiting
        free = processor._lock.acquire(timeout=2)
        os._exit(0 if free and not processor._waiting and processor._waiting_count == 0 else 1)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
