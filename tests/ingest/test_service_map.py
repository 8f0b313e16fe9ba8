"""The services page: services seen and a map of cross-service calls, from ingested spans."""

from __future__ import annotations

import time

import httpx

from kansoku.store.queries import service_edges, service_summary

from .conftest import Running, wait_for


def resource_spans(service: str, spans: list[dict[str, object]]) -> dict[str, object]:
    """One OTLP JSON resourceSpans entry of `service`."""
    return {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": spans}]}


def span(span_id: str, name: str, parent: str = "", status: int = 0) -> dict[str, object]:
    """An OTLP JSON span of trace 5b8e... that started a second ago."""
    start = time.time_ns() - 1_000_000_000
    return {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "parentSpanId": parent,
            "name": name, "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 20_000_000),
            "status": {"code": status}}


def test_cross_service_parents_make_the_map(running: Running) -> None:
    """web -> api -> db-proxy calls (one failed) appear as edges; each service with its spans and project."""
    body = {"resourceSpans": [
        resource_spans("web", [span("aaaaaaaaaaaaaaa1", "GET /checkout"), span("aaaaaaaaaaaaaaa2", "call api",
                                                                            "aaaaaaaaaaaaaaa1")]),
        resource_spans("api", [span("bbbbbbbbbbbbbbb1", "POST /orders", "aaaaaaaaaaaaaaa2"),
                               span("bbbbbbbbbbbbbbb2", "query", "bbbbbbbbbbbbbbb1")]),
        resource_spans("db-proxy", [span("ccccccccccccccc1", "SELECT", "bbbbbbbbbbbbbbb2", status=2)]),
    ]}
    answer = httpx.post(f"{running.url}/v1/traces", json=body,
                        headers={"authorization": f"Bearer {running.project.key}"})
    assert answer.status_code == 200
    since = time.time() - 3600
    edges = wait_for(lambda: len(service_edges(running.engine, since)) == 2 and service_edges(running.engine, since),
                     what="two edges")
    assert [(e["caller"], e["callee"], e["calls"], e["failed"]) for e in edges] in (
        [("web", "api", 1, 0), ("api", "db-proxy", 1, 1)], [("api", "db-proxy", 1, 1), ("web", "api", 1, 0)])
    summary = {s["service"]: (s["spans"], s["failed"], s["project"]) for s in service_summary(running.engine, since)}
    assert summary == {"api": (2, 0, "shop"), "db-proxy": (1, 1, "shop"), "web": (2, 0, "shop")}
    page = httpx.get(f"{running.url}/kansoku/services")
    assert page.status_code == 200
    assert page.text.count("<line ") == 2 and "api → db-proxy: 1 calls, 1 failed" in page.text
