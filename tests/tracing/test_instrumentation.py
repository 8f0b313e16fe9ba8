"""Outgoing calls: the official httpx/requests instrumentors switched on by settings, and inject_headers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from kansoku import tracing
from kansoku.settings import load_settings
from kansoku.tracing import configure_tracing, inject_headers


@pytest.fixture
def echo_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server recording the headers of every request it gets."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stock", seen
    server.shutdown()
    thread.join()
    server.server_close()


def _traceparent_ids(header: str) -> tuple[str, str]:
    _, trace_id, span_id, _ = header.split("-")
    return trace_id, span_id


@pytest.mark.parametrize("library", ["httpx", "requests"])
def test_outgoing_calls_carry_traceparent_and_make_client_spans(
    library: str, echo_server: tuple[str, list[dict[str, str]]]
) -> None:
    """With instrument_<library>, a call inside a span sends traceparent from a CLIENT child span."""
    url, seen = echo_server
    exporter = InMemorySpanExporter()
    provider = configure_tracing(load_settings(store_spans=False, **{f"instrument_{library}": True}), None, "svc")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("parent") as parent:
        if library == "httpx":
            with httpx.Client() as client:
                assert client.get(url).status_code == 200
        else:
            assert requests.get(url, timeout=5).status_code == 200
    client_span = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT)
    assert client_span.parent is not None and client_span.context is not None
    assert client_span.parent.span_id == parent.get_span_context().span_id
    trace_id, span_id = _traceparent_ids(seen[0]["traceparent"])
    assert trace_id == format(parent.get_span_context().trace_id, "032x")
    assert span_id == format(client_span.context.span_id, "016x")
    provider.shutdown()


def test_uninstrument_removes_the_patches(echo_server: tuple[str, list[dict[str, str]]]) -> None:
    """After uninstrument_libraries(), outgoing calls are the library's own again."""
    url, seen = echo_server
    provider = configure_tracing(load_settings(store_spans=False, instrument_requests=True), None, "svc")
    tracing.uninstrument_libraries()
    with provider.get_tracer("test").start_as_current_span("parent"):
        requests.get(url, timeout=5)
    assert "traceparent" not in seen[0]
    provider.shutdown()


def test_inject_headers_writes_the_current_span(echo_server: tuple[str, list[dict[str, str]]]) -> None:
    """inject_headers() adds the W3C traceparent of the current span; nothing outside any span."""
    url, seen = echo_server
    provider = configure_tracing(load_settings(store_spans=False), None, "svc")
    assert inject_headers({}) == {}
    with provider.get_tracer("test").start_as_current_span("parent") as span:
        headers = inject_headers({"accept": "text/plain"})
        httpx.get(url, headers=dict(headers))
    ctx = span.get_span_context()
    assert _traceparent_ids(seen[0]["traceparent"]) == (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
    assert seen[0]["accept"] == "text/plain"
    assert not trace.get_current_span().get_span_context().is_valid
    provider.shutdown()
