"""The real OTLP/HTTP exporter sends kansoku's spans to a local receiver that decodes the protobuf."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from kansoku import tracing
from kansoku.settings import load_settings
from kansoku.tracing import RequestTracer, configure_tracing, traced


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass
class Received:
    """What the receiver decoded: one entry per span, plus the request paths."""

    paths: list[str] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP receiver on 127.0.0.1 decoding ExportTraceServiceRequest; yields its base URL."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            received.paths.append(self.path)
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                received.resources.append(resource)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        received.spans.append({
                            "service": resource.get("service.name"),
                            "scope": scope_spans.scope.name,
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "status": span.status.code,
                            "events": [event.name for event in span.events],
                        })
            out = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    thread.join()
    server.server_close()


def test_spans_arrive_over_otlp_http_with_resource_names_and_attributes(
    receiver: tuple[str, Received],
) -> None:
    """Service resource, span names, HTTP attributes, the parent link and the error arrive at /v1/traces."""
    base_url, received = receiver
    settings = load_settings(otlp_endpoint=base_url, service_name="orders", version="2.4.1",
                             environment="staging", trace_level="DETAILED")
    provider = configure_tracing(settings, None)
    tracing.configure(settings, provider)

    @traced(name="orders.load")
    def load(order_id: int, api_key: str) -> dict[str, int]:
        return {"id": order_id}

    request_tracer = RequestTracer(provider, settings)
    handle = request_tracer.start({
        "type": "http", "method": "GET", "path": "/orders/7", "scheme": "http", "http_version": "1.1",
        "client": ("10.1.2.3", 40000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"orders.internal"), (b"user-agent", b"test-agent")]})
    assert handle is not None
    load(7, "secret-key")
    request_tracer.finish(handle, 500, "/orders/{order_id}", RuntimeError("db down"))
    assert provider.force_flush(10_000)
    provider.shutdown()

    assert set(received.paths) == {"/v1/traces"}
    resource = received.resources[0]
    assert {k: resource[k] for k in ("service.name", "service.version", "deployment.environment")} == {
        "service.name": "orders", "service.version": "2.4.1", "deployment.environment": "staging"}
    assert resource["host.name"]
    by_name = {span["name"]: span for span in received.spans}
    assert set(by_name) == {"GET /orders/{order_id}", "orders.load"}
    server, child = by_name["GET /orders/{order_id}"], by_name["orders.load"]
    assert server["scope"] == "kansoku" and server["service"] == "orders"
    assert server["trace_id"] == handle.trace_id == child["trace_id"]
    assert child["parent_span_id"] == server["span_id"] == handle.span_id
    assert server["parent_span_id"] == ""
    assert server["attributes"] == {
        "http.request.method": "GET", "url.path": "/orders/7", "url.scheme": "http",
        "network.protocol.version": "1.1", "client.address": "10.1.2.3", "server.address": "orders.internal",
        "user_agent.original": "test-agent", "http.response.status_code": 500,
        "http.route": "/orders/{order_id}", "error.type": "RuntimeError"}
    assert server["status"] == 2  # STATUS_CODE_ERROR
    assert server["events"] == ["exception"]
    assert child["attributes"] == {"code.function": "test_spans_arrive_over_otlp_http_with_resource_names_and_"
                                                    "attributes.<locals>.load",
                                   "code.namespace": __name__, "kansoku.args.order_id": 7,
                                   "kansoku.args.api_key": "[REDACTED]"}


def test_traces_url_follows_the_otlp_endpoint_rules() -> None:
    """A base endpoint gets /v1/traces (as OTEL_EXPORTER_OTLP_ENDPOINT does); a full one is kept."""
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("https://x/otlp/v1/traces") == "https://x/otlp/v1/traces"


def test_a_dead_collector_is_one_line_down_and_one_back(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A collector answering 503: one kansoku warning for three failed batches, no SDK retry lines, one line back."""
    from kansoku.testing import capture_logs

    down = [True]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            out = b"" if down[0] else ExportTraceServiceResponse().SerializeToString()
            self.send_response(503 if down[0] else 200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")  # the SDK retries 503 until then
    provider = configure_tracing(load_settings(otlp_endpoint=f"http://127.0.0.1:{server.server_address[1]}"), None)
    tracer = provider.get_tracer("test")
    try:
        with capture_logs() as logs:
            for i in range(3):
                tracer.start_span(f"lost-{i}").end()
                provider.force_flush(10_000)
            down[0] = False
            tracer.start_span("sent").end()
            provider.force_flush(10_000)
    finally:
        provider.shutdown()
        server.shutdown()
        server.server_close()
    lines = [(r["level"], r["event"], r.get("not_sent")) for r in logs if r.get("target") == "otlp"]
    assert lines == [("warning", "otlp unreachable", None), ("info", "otlp reachable again", 3)]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry.exporter")] == []
