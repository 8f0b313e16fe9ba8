"""OTLP /v1/logs into the log store: the real OpenTelemetry Python SDK's log exporter, found by search."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from kansoku.ingest.logs import level_of
from kansoku.store.search import search_logs

from .conftest import Running, wait_for

TOKEN = "dashboard-token-for-the-logs-tests"


def found(running: Running, query: str) -> list[dict[str, Any]]:
    """The stored lines matching `query`, newest first."""
    return list(search_logs(running.engine, query, limit=100)["lines"])


def test_python_sdk_log_records_are_searchable_by_field_cli_and_api(start_server: Any, tmp_path: Path) -> None:
    """Records of the OTel Python SDK (LoggingHandler, batch processor, gzip) are stored with level, fields,
    trace ids, service, version, environment and project; `kansoku logs search` and /api/logs find them."""
    running = start_server(dashboard_token=TOKEN)
    provider = LoggerProvider(resource=Resource.create({"service.name": "billing", "service.version": "2.1.0",
                                                         "deployment.environment.name": "staging"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(
        endpoint=running.config["otlp_endpoint"] + "/v1/logs", compression=Compression.Gzip,
        headers={"authorization": f"Bearer {running.project.key}"})))
    log = logging.getLogger("billing.invoices")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(LoggingHandler(logger_provider=provider))
    tracer = TracerProvider().get_tracer("billing")
    with tracer.start_as_current_span("invoice") as span:
        log.warning("invoice %s overdue", "inv-77", extra={"invoice_id": "inv-77", "days": 31})
        trace_id = f"{span.get_span_context().trace_id:032x}"
    log.debug("cache warm")
    log.error("card declined for customer", extra={"invoice_id": "inv-78"})
    provider.shutdown()

    lines = wait_for(lambda: len(found(running, "service=billing")) == 3 and found(running, "service=billing"),
                     what="3 stored lines")
    warning = found(running, "invoice_id=inv-77")[0]
    assert (warning["message"], warning["level"], warning["logger"], warning["trace_id"]) == (
        "invoice inv-77 overdue", "warning", "billing.invoices", trace_id)
    assert (warning["service"], warning["version"], warning["environment"], warning["project"]) == (
        "billing", "2.1.0", "staging", "shop")
    assert warning["attributes"]["days"] == 31
    assert [line["level"] for line in lines] == ["error", "debug", "warning"]
    assert [line["message"] for line in found(running, "level>=error project=shop")] == ["card declined for customer"]

    env = {k: v for k, v in os.environ.items() if not k.startswith("KANSOKU_")}
    env["KANSOKU_DATABASE_URL"] = str(running.engine.url)
    kansoku = Path(sys.executable).with_name("kansoku")
    cli = subprocess.run([str(kansoku), "logs", "search", "invoice_id=inv-77 service=billing", "--json"], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    assert [line["message"] for line in json.loads(cli.stdout)["lines"]] == ["invoice inv-77 overdue"]
    api = httpx.get(f"{running.url}/kansoku/api/logs", params={"q": "invoice_id=inv-78 project=shop"},
                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert [(line["message"], line["service"]) for line in api.json()["lines"]] == [
        ("card declined for customer", "billing")]


def test_json_logs_partial_success_and_redaction(running: Running) -> None:
    """A JSON export: a record with a malformed trace id is rejected in partial_success, the others kept,
    a structured body stored as JSON text, and a secret in a record redacted before it is stored."""
    secret = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
    body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "edge"}}]},
                              "scopeLogs": [{"scope": {"name": "edge.http"}, "logRecords": [
        {"timeUnixNano": "1700000000000000000", "severityNumber": 17, "body": {"stringValue": f"token {secret}"},
         "attributes": [{"key": "password", "value": {"stringValue": "hunter2"}}]},
        {"timeUnixNano": "1700000000500000000", "severityText": "WARN",
         "body": {"kvlistValue": {"values": [{"key": "route", "value": {"stringValue": "/cart"}}]}}},
        {"timeUnixNano": "1700000001000000000", "traceId": "abcd", "body": {"stringValue": "bad ids"}},
    ]}]}]}
    answer = httpx.post(f"{running.url}/v1/logs", json=body, headers={"Authorization": f"Bearer {running.project.key}"})
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1" and "trace_id" in partial["errorMessage"]
    lines = wait_for(lambda: len(found(running, "service=edge")) == 2 and found(running, "service=edge"),
                     what="2 stored lines")
    assert [(line["level"], line["logger"], line["timestamp"]) for line in lines] == [
        ("warning", "edge.http", 1700000000.5), ("error", "edge.http", 1700000000.0)]
    assert json.loads(lines[0]["message"]) == {"route": "/cart"}
    assert secret not in lines[1]["message"] and lines[1]["attributes"]["password"] != "hunter2"
    assert running.server.ingest.ingestor.counts["logs_rejected"] == 1


def test_bad_log_bodies_are_400_and_keys_401(running: Running) -> None:
    """Malformed protobuf or JSON is 400 with the reason; no key or a wrong one is 401; nothing stored."""
    key = {"Authorization": f"Bearer {running.project.key}"}
    assert httpx.post(f"{running.url}/v1/logs", content=b"\xff\xff\xff", headers={
        **key, "Content-Type": "application/x-protobuf"}).status_code == 400
    bad_json = httpx.post(f"{running.url}/v1/logs", content=b"{nope",
                          headers={**key, "Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["detail"]
    assert httpx.post(f"{running.url}/v1/logs", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(f"{running.url}/v1/logs", content=b"x", headers={**key, "Content-Type": "text/plain"}
                      ).status_code == 415
    assert found(running, "") == []


def test_severity_numbers_map_to_levels() -> None:
    """OTel severity ranges of four map to trace..critical; an unset number reads the text, else info."""
    assert [level_of(n, "") for n in (1, 4, 5, 9, 13, 16, 17, 21, 24)] == [5, 5, 10, 20, 30, 30, 40, 50, 50]
    assert (level_of(0, "ERROR"), level_of(0, "warn"), level_of(0, ""), level_of(99, "fatal")) == (40, 30, 20, 50)
