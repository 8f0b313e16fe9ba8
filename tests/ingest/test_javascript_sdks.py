"""The real JavaScript SDKs from npm (@sentry/node, @opentelemetry/sdk-node, @opentelemetry/sdk-logs),
configured only by their environment variables, reporting to kansoku server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kansoku.store import queries
from kansoku.store.search import search_logs
from kansoku.store.tables import spans

from .conftest import Running, run_node, wait_for

pytestmark = pytest.mark.slow


def test_sentry_node_100_errors_make_one_group(running: Running, node_modules: Path) -> None:
    """@sentry/node's 100 captures of one error are one group of count 100, with release and frames."""
    run_node(node_modules, "sentry_errors.js", {"SENTRY_DSN": running.config["dsn"], "SENTRY_RELEASE": "web@3.1.0",
                                                 "SENTRY_ENVIRONMENT": "production", "COUNT": "100"})
    group = wait_for(lambda: [g for g in queries.list_groups(running.engine, status=None)["items"]
                              if g["count"] == 100], what="a group of 100")[0]
    assert len(queries.list_groups(running.engine, status=None)["items"]) == 1
    assert (group["exception_type"], group["last_release"], group["environment"], group["project"]) == (
        "Error", "web@3.1.0", "production", "shop")
    assert group["fingerprint_parts"] == ["type:Error", "frame:sentry_errors.main", "frame:sentry_errors.checkout"]
    event: dict[str, Any] = queries.get_group(running.engine, group["id"], events=1)["events"][0]  # type: ignore[index]
    assert event["extra"]["sdk"]["name"] == "sentry.javascript.node"


def test_opentelemetry_node_and_a_kansoku_service_make_one_trace(
        running: Running, node_modules: Path, inventory_service: str) -> None:
    """@opentelemetry/sdk-node's spans and the kansoku-instrumented Python service it calls form one
    trace in the server's store; the recorded exception is an error event of the Node service."""
    out = run_node(node_modules, "otel_trace.js", {
        "OTEL_EXPORTER_OTLP_ENDPOINT": running.config["otlp_endpoint"],
        "OTEL_EXPORTER_OTLP_HEADERS": running.config["otlp_headers"],
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_SERVICE_NAME": "checkout-node",
        "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "INVENTORY_URL": inventory_service})
    trace_id = json.loads(out.strip().splitlines()[-1])["trace_id"]

    def trace() -> list[Any]:
        with running.engine.connect() as conn:
            rows = conn.execute(select(spans.c.name, spans.c.service, spans.c.kind, spans.c.span_id,
                                       spans.c.parent_id).where(spans.c.trace_id == trace_id)).all()
        return rows if {r.service for r in rows} == {"checkout-node", "inventory"} else []

    rows = {(r.service, r.kind): r for r in wait_for(trace, timeout=30, what="both services' spans")}
    node_root, node_client = rows["checkout-node", "SERVER"], rows["checkout-node", "CLIENT"]
    assert node_client.parent_id == node_root.span_id
    assert rows["inventory", "SERVER"].parent_id == node_client.span_id  # the Python span joins the trace
    assert rows["inventory", "SERVER"].name == "GET /inventory"
    group = wait_for(lambda: queries.list_groups(running.engine, status=None)["items"], what="the error")[0]
    assert (group["title"], group["service"]) == ("Error: stock check failed for sku 42", "checkout-node")


def test_opentelemetry_node_logs_are_searchable(running: Running, node_modules: Path) -> None:
    """@opentelemetry/sdk-logs' records, exported by OTLP/HTTP, are log lines of the Node service and
    the project: found by field, level and project, the warning in its span's trace."""
    out = run_node(node_modules, "otel_logs.js", {
        "OTEL_EXPORTER_OTLP_ENDPOINT": running.config["otlp_endpoint"],
        "OTEL_EXPORTER_OTLP_HEADERS": running.config["otlp_headers"],
        "OTEL_SERVICE_NAME": "checkout-node", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod"})
    trace_id = json.loads(out.strip().splitlines()[-1])["trace_id"]

    def lines(query: str) -> list[dict[str, Any]]:
        return list(search_logs(running.engine, query)["lines"])

    wait_for(lambda: len(lines("service=checkout-node")) == 3, what="3 Node log lines")
    (warning,) = lines("cart.id=cart-501")
    assert (warning["message"], warning["level"], warning["logger"], warning["trace_id"], warning["environment"],
            warning["project"], warning["attributes"]["items"]) == (
        "cart nearly full", "warning", "checkout.cart", trace_id, "prod", "shop", 19)
    assert [line["message"] for line in lines("level>=error project=shop")] == ["payment refused"]
    (structured,) = lines("level=info service=checkout-node")
    assert json.loads(structured["message"]) == {"step": "checkout", "ok": True}
