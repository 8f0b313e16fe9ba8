"""OTLP log export: kansoku's log lines reach a local OTLP/HTTP receiver that decodes the protobuf."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

import kansoku
from kansoku import runtime as _runtime
from kansoku.logs._otlp import logs_target
from kansoku.settings import load_settings


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OTLP/HTTP receiver on 127.0.0.1 decoding ExportLogsServiceRequest; yields its base URL."""
    records: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportLogsServiceRequest.FromString(body)
            for resource_logs in request.resource_logs:
                resource = {a.key: _value(a.value) for a in resource_logs.resource.attributes}
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        records.append({
                            "path": self.path, "resource": resource, "body": _value(record.body),
                            "severity_number": record.severity_number, "severity_text": record.severity_text,
                            "trace_id": record.trace_id.hex(), "span_id": record.span_id.hex(),
                            "attributes": {a.key: _value(a.value) for a in record.attributes}})
            out = ExportLogsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", records
    server.shutdown()
    server.server_close()


def test_log_lines_arrive_as_otlp_records(tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    """Body, severity, redacted attributes, trace and span ids, and the service resource arrive at /v1/logs."""
    base_url, records = receiver
    _runtime.setup(database_url=f"sqlite:///{tmp_path / 'k.db'}", otlp_logs_endpoint=f"{base_url}/v1/logs",
                  service_name="orders", environment="staging", dashboard=False, log_format="json")
    try:
        log = kansoku.get_logger("shop.orders")
        tracer = _runtime.current().tracer_provider.get_tracer("test")  # type: ignore[union-attr]
        with tracer.start_as_current_span("checkout") as span:
            log.warning("card declined", order_id=42, password="hunter2", amount=12.5)
        log.info("plain line")
        assert _runtime.current().otlp_logs.flush()  # type: ignore[union-attr]
    finally:
        _runtime.shutdown(5.0)
    declined = next(r for r in records if r["body"] == "card declined")
    context = span.get_span_context()
    assert declined["path"] == "/v1/logs"
    assert (declined["severity_number"], declined["severity_text"]) == (13, "WARNING")
    assert (declined["trace_id"], declined["span_id"]) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert {k: declined["attributes"][k] for k in ("order_id", "password", "amount", "logger")} == {
        "order_id": 42, "password": "[REDACTED]", "amount": 12.5, "logger": "shop.orders"}
    assert {k: declined["resource"][k] for k in ("service.name", "deployment.environment")} == {
        "service.name": "orders", "deployment.environment": "staging"}
    plain = next(r for r in records if r["body"] == "plain line")
    assert (plain["severity_number"], plain["trace_id"]) == (9, "")
    assert "hunter2" not in repr(records)


def test_the_log_export_is_on_only_when_configured() -> None:
    """OTEL_LOGS_EXPORTER=otlp (to the endpoint's /v1/logs) or a logs endpoint; never by the shared endpoint alone."""
    assert logs_target(load_settings(otlp_endpoint="http://c:4318")) == (False, None)
    assert logs_target(load_settings(otlp_endpoint="http://c:4318", logs_exporter="otlp")) == (
        True, "http://c:4318/v1/logs")
    assert logs_target(load_settings(logs_exporter="otlp")) == (True, None)
    assert logs_target(load_settings(otlp_logs_endpoint="http://l/v1/logs", logs_exporter="none")) == (False, None)
    assert logs_target(load_settings(otlp_logs_endpoint="http://l/v1/logs", sdk_disabled=True)) == (False, None)
