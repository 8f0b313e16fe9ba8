"""Two real servers, one calling the other with httpx: one trace, the right parents, ids in both logs."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from kansoku.logs import get_logger
from kansoku.settings import load_settings
from kansoku.tracing import RequestTracer, configure_tracing
from kansoku.typing import ASGIApp, Receive, Scope, Send

Lines = Callable[[], list[dict[str, Any]]]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_app(name: str, tracer: RequestTracer, downstream: str | None = None) -> ASGIApp:
    """A small ASGI app that opens its server span with RequestTracer, logs, and maybe calls on."""
    log = get_logger(name)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        handle = tracer.start(scope)
        status = 500
        try:
            log.info("handling request", path=scope["path"])
            body = name.encode()
            if downstream is not None:
                async with httpx.AsyncClient() as client:
                    answer = await client.get(downstream)
                body += b" <- " + answer.content
            status = 200
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": body})
        finally:
            tracer.finish(handle, status, scope["path"], None)

    return app


@contextmanager
def serve(app: ASGIApp, port: int) -> Iterator[str]:
    """Run `app` under uvicorn on 127.0.0.1:port in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_one_trace_across_two_apps_with_parents_and_log_ids(log_lines: Lines) -> None:
    """front -> httpx -> back: same trace id, back's server span is the child of front's client span."""
    front_spans, back_spans = InMemorySpanExporter(), InMemorySpanExporter()
    front_provider = configure_tracing(load_settings(store_spans=False, instrument_httpx=True), None, "front")
    back_provider = configure_tracing(load_settings(store_spans=False), None, "back")
    front_provider.add_span_processor(SimpleSpanProcessor(front_spans))
    back_provider.add_span_processor(SimpleSpanProcessor(back_spans))
    back_app = make_app("back", RequestTracer(back_provider))
    with serve(back_app, free_port()) as back_url:
        front_app = make_app("front", RequestTracer(front_provider), downstream=f"{back_url}/stock/7")
        # urllib: the test's own call is not instrumented, so front starts the trace
        with serve(front_app, free_port()) as front_url, \
                urllib.request.urlopen(f"{front_url}/orders/7", timeout=10) as response:
            assert response.read() == b"front <- back"

    front_server, front_client = _by_kind(front_spans, SpanKind.SERVER), _by_kind(front_spans, SpanKind.CLIENT)
    back_server = _by_kind(back_spans, SpanKind.SERVER)
    trace_id = front_server.context.trace_id
    assert front_client.context.trace_id == back_server.context.trace_id == trace_id
    assert front_server.parent is None
    assert front_client.parent.span_id == front_server.context.span_id
    assert back_server.parent.span_id == front_client.context.span_id and back_server.parent.is_remote
    assert front_server.resource.attributes["service.name"] == "front"
    assert back_server.resource.attributes["service.name"] == "back"
    # the instrumentor's conventions follow OTEL_SEMCONV_STABILITY_OPT_IN (old names by default)
    client_attributes = front_client.attributes
    assert client_attributes.get("http.response.status_code", client_attributes.get("http.status_code")) == 200

    lines = {line["logger"]: line for line in log_lines() if line["event"] == "handling request"}
    hex_trace = format(trace_id, "032x")
    assert lines["front"]["trace_id"] == lines["back"]["trace_id"] == hex_trace
    assert lines["front"]["span_id"] == format(front_server.context.span_id, "016x")
    assert lines["back"]["span_id"] == format(back_server.context.span_id, "016x")
    front_provider.shutdown()
    back_provider.shutdown()


def _by_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> Any:
    [span] = [s for s in exporter.get_finished_spans() if s.kind is kind]
    return span
