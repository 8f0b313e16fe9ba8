"""The real OpenTelemetry Python SDK exporting OTLP/HTTP to kansoku server with a project's token."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from sqlalchemy import select

from kansoku.store import queries
from kansoku.store.tables import spans

from .conftest import Running, wait_for


def provider_for(running: Running, service: str, **exporter: Any) -> TracerProvider:
    """A TracerProvider of `service` exporting to the server with the project's headers."""
    key = running.project.key
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "prod"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{running.url}/v1/traces", headers={"authorization": f"Bearer {key}"}, **exporter)))
    return provider


def stored(running: Running) -> list[dict[str, Any]]:
    """Every stored span as a dict, in start order."""
    with running.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(spans).order_by(spans.c.start_time))]


def test_spans_kinds_events_links_and_resource(running: Running) -> None:
    """Server, client and internal spans with events, links and resource attributes are stored (gzip)."""
    provider = provider_for(running, "billing", compression=Compression.Gzip)
    tracer = provider.get_tracer("billing")
    with tracer.start_as_current_span("warmup") as warmup:
        pass
    with tracer.start_as_current_span("POST /invoices", kind=SpanKind.SERVER,
                                      links=[Link(warmup.get_span_context(), {"why": "batch"})]) as root:
        root.add_event("validated", {"lines": 3})
        with tracer.start_as_current_span("GET tax-api", kind=SpanKind.CLIENT) as client:
            client.set_status(Status(StatusCode.ERROR, "tax-api timed out"))
    provider.shutdown()
    rows = wait_for(lambda: len(stored(running)) == 3 and stored(running), what="3 spans")
    by_name = {r["name"]: r for r in rows}
    server, client = by_name["POST /invoices"], by_name["GET tax-api"]
    assert (server["kind"], server["is_root"], server["service"], server["project"]) == ("SERVER", True, "billing",
                                                                                         "shop")
    assert (client["kind"], client["parent_id"], client["status"], client["status_message"]) == (
        "CLIENT", server["span_id"], "ERROR", "tax-api timed out")
    assert server["events"][0]["name"] == "validated" and server["events"][0]["attributes"] == {"lines": 3}
    warm = by_name["warmup"]
    assert server["links"] == [{"trace_id": warm["trace_id"], "span_id": warm["span_id"],
                                "attributes": {"why": "batch"}}]
    assert server["resource"]["service.name"] == "billing" and server["resource"]["deployment.environment"] == "prod"


def test_exception_events_become_error_events(running: Running) -> None:
    """A span's recorded exception is an error event of the span's service, in the span's trace."""
    provider = provider_for(running, "billing")
    tracer = provider.get_tracer("billing")
    for _ in range(3):
        with tracer.start_as_current_span("charge") as span:
            try:
                raise TimeoutError("card network timed out after 30 s")
            except TimeoutError as exc:
                span.record_exception(exc)
    provider.shutdown()
    group = wait_for(lambda: [g for g in queries.list_groups(running.engine, status=None)["items"]
                              if g["count"] == 3], what="a group of 3")[0]
    assert (group["exception_type"], group["service"], group["environment"], group["project"]) == (
        "TimeoutError", "billing", "prod", "shop")
    event = queries.get_group(running.engine, group["id"], events=1)["events"][0]  # type: ignore[index]
    assert event["trace_id"] in {r["trace_id"] for r in stored(running)}
    assert event["exceptions"][0]["frames"][-1]["function"] == "test_exception_events_become_error_events"


def test_json_encoding_and_partial_success(running: Running) -> None:
    """OTLP JSON (hex ids) is accepted; a span with a bad id is rejected alone, per partial success."""
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                           "value": {"stringValue": "cron"}}]},
                               "scopeSpans": [{"spans": [
                                   {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                                    "name": "nightly", "kind": 1, "startTimeUnixNano": "1800000000000000000",
                                    "endTimeUnixNano": "1800000001000000000"},
                                   {"traceId": "", "spanId": "eee19b7ec3c1b175", "name": "broken"}]}]}]}
    answer = httpx.post(f"{running.url}/v1/traces", json=body,
                        headers={"authorization": f"Bearer {running.project.key}"})
    assert answer.status_code == 200
    assert answer.json() == {"partialSuccess": {"rejectedSpans": "1", "errorMessage":
                             "spans need a 16-byte trace_id and an 8-byte span_id, not all zero"}}
    rows = wait_for(lambda: stored(running), what="the span")
    assert [(r["name"], r["service"], r["duration_ms"]) for r in rows] == [("nightly", "cron", 1000.0)]


def test_ingested_spans_are_redacted(running: Running) -> None:
    """Secrets a sender put in span names, attributes, events and resources never reach the store."""
    provider = TracerProvider(resource=Resource.create({"service.name": "billing", "db.password": "hunter2"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{running.url}/v1/traces", headers={"authorization": f"Bearer {running.project.key}"})))
    with provider.get_tracer("billing").start_as_current_span("charge card 4111 1111 1111 1111") as span:
        span.set_attribute("http.request.header.authorization", "Bearer sk_live_abcdefghijklmnop1234")
        span.set_attribute("api_key", "abc123")
        span.add_event("retry", {"password": "hunter2"})
    provider.shutdown()
    row = wait_for(lambda: stored(running), what="the span")[0]
    text = repr(row)
    assert "hunter2" not in text and "4111 1111 1111 1111" not in text and "abc123" not in text
    assert "sk_live_abcdefghijklmnop1234" not in text
    assert row["resource"]["service.name"] == "billing"
