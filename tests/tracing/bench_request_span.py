"""Cost of RequestTracer.start + finish per request at 100 % sampling (run directly, not by pytest).

    .venv/bin/python tests/tracing/bench_request_span.py

Prints the median microseconds per request over several rounds for: the kansoku server span
(BatchSpanProcessor to a null exporter, as with an OTLP endpoint), the same span when the local
store's budget is spent (what most requests of a busy service cost with no endpoint), an
unsampled request, and for comparison the plain OpenTelemetry SDK span with the same attributes;
then the overhead of a `traced` call at each level.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from kansoku.settings import load_settings
from kansoku.tracing import RequestTracer, StoreSpanProcessor, configure_tracing

SCOPE = {
    "type": "http", "method": "GET", "path": "/items/42", "scheme": "http", "http_version": "1.1",
    "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*"),
                (b"accept-encoding", b"gzip, deflate"), (b"connection", b"keep-alive")],
}


class NullExporter(SpanExporter):
    """Drops every span: measures the request path, not the export thread."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def median_us(step: Callable[[], object], n: int = 20_000, rounds: int = 9) -> float:
    """Median over rounds of the mean time of `step` in microseconds."""
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            step()
        results.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(results)


def main() -> None:
    """Measure and print."""
    for rate in (1.0, 0.0):
        provider = configure_tracing(load_settings(trace_sample_rate=rate, store_spans=False), None, "bench")
        provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))  # no drops
        tracer = RequestTracer(provider)

        def kansoku_request(tracer: RequestTracer = tracer) -> None:
            handle = tracer.start(SCOPE)
            tracer.finish(handle, 200, "/items/{item_id}", None)

        print(f"kansoku RequestTracer start+finish, sample rate {rate}: {median_us(kansoku_request):.2f} us")
        if rate == 1.0:
            sdk = provider.get_tracer("bench")

            def sdk_request(sdk: trace.Tracer = sdk) -> None:
                span = sdk.start_span("GET", kind=trace.SpanKind.SERVER, attributes={
                    "http.request.method": "GET", "url.path": "/items/42", "url.scheme": "http",
                    "network.protocol.version": "1.1", "client.address": "127.0.0.1",
                    "server.address": "127.0.0.1", "server.port": 8000, "user_agent.original": "bench/1.0"})
                token = context.attach(trace.set_span_in_context(span))
                span.set_attribute("http.route", "/items/{item_id}")
                span.set_attribute("http.response.status_code", 200)
                span.update_name("GET /items/{item_id}")
                span.end()
                context.detach(token)

            print(f"plain OpenTelemetry SDK span, same attributes:      {median_us(sdk_request):.2f} us")
        provider.shutdown()
    bench_store_budget()
    bench_traced()


def bench_store_budget() -> None:
    """The server span with the local store as the only processor and its budget spent."""
    provider = configure_tracing(load_settings(store_spans=False), None, "bench")
    budget = StoreSpanProcessor(downstream=BatchSpanProcessor(NullExporter()), traces_per_second=1e-9)
    provider.add_span_processor(budget)
    tracer = RequestTracer(provider)

    def request() -> None:
        handle = tracer.start(SCOPE)
        tracer.finish(handle, 200, "/items/{item_id}", None)

    print(f"kansoku RequestTracer start+finish, store budget spent: {median_us(request):.2f} us")
    provider.shutdown()


def bench_traced() -> None:
    """Overhead of a `traced` call per level, with and without a provider."""
    from kansoku import tracing
    from kansoku.tracing import traced

    @traced(name="bench.op")
    def op(x: int) -> int:
        return x

    tracing.configure(None, None)
    print(f"traced, nothing configured (summary only):   {median_us(lambda: op(1)):.2f} us")
    provider = configure_tracing(load_settings(store_spans=False), None, "bench")
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))
    for level in ("DISABLED", "ERROR_ONLY", "PERFORMANCE", "DETAILED"):
        tracing.configure(None, provider, level=level)
        print(f"traced at {level:<12} with a provider:    {median_us(lambda: op(1)):.2f} us")
    tracing.reset()
    provider.shutdown()


if __name__ == "__main__":
    main()
