"""LightTracer's shortcuts give what the SDK's long way gives: sampling, ids, context, processors."""

from __future__ import annotations

import random
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from kansoku.settings import load_settings
from kansoku.tracing import LightTracer, RequestTracer, add_trace_ids, configure_tracing

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT = 0x00F067AA0BA902B7


def test_inline_sampling_is_the_sdk_samplers_decision() -> None:
    """At rate 0.5, kansoku's inline decision equals ParentBased(TraceIdRatioBased) on every trace id."""
    provider = configure_tracing(load_settings(trace_sample_rate=0.5, store_spans=False), None)
    tracer = LightTracer(provider, "test")
    random.seed(7)
    decisions = []
    for _ in range(400):
        span = tracer.start_span("op", SpanKind.INTERNAL, Context())
        ctx = span.get_span_context()
        expected = provider.sampler.should_sample(Context(), ctx.trace_id, "op").decision
        assert span.sampled == (expected is Decision.RECORD_AND_SAMPLE) == span.is_recording()
        flags = TraceFlags(TraceFlags.SAMPLED if span.sampled else TraceFlags.DEFAULT)
        assert ctx == SpanContext(ctx.trace_id, ctx.span_id, False, flags, TraceState())
        assert ctx.is_valid and not ctx.is_remote
        decisions.append(span.sampled)
    assert 150 < sum(decisions) < 250
    provider.shutdown()


def test_children_follow_the_parents_flag_and_trace_state() -> None:
    """Local and remote parents, sampled or not: the child takes the parent's trace id, flag and state."""
    provider = configure_tracing(load_settings(trace_sample_rate=0.0, store_spans=False), None)
    tracer = LightTracer(provider, "test")
    state = TraceState([("vendor", "abc")])
    for remote in (False, True):
        for flag in (TraceFlags.DEFAULT, TraceFlags.SAMPLED):
            parent = SpanContext(TRACE, PARENT, remote, TraceFlags(flag), state)
            context = trace.set_span_in_context(NonRecordingSpan(parent))
            child = tracer.start_span("child", SpanKind.INTERNAL, context)
            ctx = child.get_span_context()
            assert (ctx.trace_id, ctx.trace_flags, ctx.trace_state) == (TRACE, parent.trace_flags, state)
            assert child._parent == parent and child.sampled == bool(flag)
    provider.shutdown()


class RecordOnly(Sampler):
    """A sampler of another kind: records every span without sampling it, and adds an attribute."""

    def should_sample(
        self, parent_context: Context | None, trace_id: int, name: str, kind: SpanKind | None = None,
        attributes: Attributes = None, links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY, {"sampler": "record-only"}, TraceState([("rs", "1")]))

    def get_description(self) -> str:
        return "RecordOnly"


class Counting(IdGenerator):
    """Ids 1, 2, 3...: another id generator."""

    def __init__(self) -> None:
        self.next = 0

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 1
        return self.next


def test_any_other_sampler_and_id_generator_are_called() -> None:
    """Another sampler decides (attributes, state), another generator makes ids; unsampled: not exported."""
    provider = TracerProvider(sampler=RecordOnly(), id_generator=Counting())
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = LightTracer(provider, "test").start_span("op", SpanKind.INTERNAL)
    ctx = span.get_span_context()
    assert (ctx.trace_id, ctx.span_id, ctx.trace_state) == (1, 2, TraceState([("rs", "1")]))
    assert span.is_recording() and not span.sampled
    span.end()
    assert exporter.get_finished_spans() == ()
    assert dict(span.readable().attributes or {}) == {"sampler": "record-only"}


def test_processors_added_later_get_spans_and_share_one_readable_span() -> None:
    """A processor added after the tracer was made is used; two processors see the same ReadableSpan."""
    provider = configure_tracing(load_settings(store_spans=False), None)
    tracer = LightTracer(provider, "test")
    tracer.start_span("before", SpanKind.INTERNAL).end()
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(first))
    provider.add_span_processor(SimpleSpanProcessor(second))
    tracer.start_span("after", SpanKind.INTERNAL).end()
    [one], [two] = first.get_finished_spans(), second.get_finished_spans()
    assert isinstance(one, ReadableSpan) and one is two and one.name == "after"
    provider.shutdown()


def test_add_trace_ids_reads_the_request_span() -> None:
    """During a request, log lines get the server span's ids (given ones kept); after it, none."""
    provider = configure_tracing(load_settings(store_spans=False), None)
    tracer = RequestTracer(provider)
    handle = tracer.start({"type": "http", "method": "GET", "path": "/", "headers": []})
    assert handle is not None
    assert add_trace_ids(None, "info", {"event": "x"}) == {
        "event": "x", "trace_id": handle.trace_id, "span_id": handle.span_id}
    assert add_trace_ids(None, "info", {"trace_id": "given"})["trace_id"] == "given"
    tracer.finish(handle, 200, "/", None)
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    assert otel_context.get_current() == Context()
    provider.shutdown()
