"""The demo app: the chapter's four services behave as documented and every pillar sees them."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import kansoku
from kansoku import runtime as _runtime
from kansoku.store import queries
from kansoku.testing import capture_logs

CARD = "4111 1111 1111 1111"


@pytest.fixture
def demo(tmp_path: Path, serve_app: Callable[[Any], Any]) -> Iterator[tuple[httpx.Client, Any]]:
    """The demo app instrumented on a throwaway store, served for real; (client, runtime)."""
    from kansoku.demo.app import create_app

    app = kansoku.instrument(create_app(), database_url=f"sqlite:///{tmp_path / 'k.db'}", strict=True,
                             log_format="json", service_name="demo-test", alert_dispatcher=False)
    try:
        with serve_app(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            yield client, app.state.kansoku
    finally:
        _runtime.shutdown(5.0)


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition, or None."""
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def stored_groups(runtime: Any) -> dict[str, dict[str, Any]]:
    """Error groups in the store after a flush, by exception type (last dotted part)."""
    runtime.errors.flush(10.0)
    items = queries.list_groups(runtime.engine, limit=200)["items"]
    return {g["exception_type"].rsplit(".", 1)[-1]: g for g in items}


def test_users_create_get_conflict_and_validation(demo: tuple[httpx.Client, Any]) -> None:
    """POST /users 201; the same e-mail again 409; GET the id 200; unknown 404; bad e-mail 422."""
    client, _ = demo
    created = client.post("/users", json={"email": "ann@example.com", "name": "Ann", "source": "web"})
    assert created.status_code == 201
    user = created.json()
    assert client.post("/users", json={"email": "ann@example.com", "name": "Ann"}).status_code == 409
    assert client.get(f"/users/{user['id']}").json()["name"] == "Ann"
    assert client.get("/users/nobody").status_code == 404
    assert client.post("/users", json={"email": "not-an-email", "name": "X"}).status_code == 422


def test_user_creation_writes_audit_and_business_logs_with_trace_ids(demo: tuple[httpx.Client, Any]) -> None:
    """Creating a user logs a business and an audit record, both in the request's trace."""
    client, _ = demo
    with capture_logs() as records:
        response = client.post("/users", json={"email": "bob@example.com", "name": "Bob"})
    assert response.status_code == 201
    mine = [r for r in records if r.get("request_id") == response.headers["x-request-id"]]
    categories = {r["category"] for r in mine}
    assert {"audit", "business"} <= categories
    audit = next(r for r in mine if r["category"] == "audit")
    assert audit["action"] == "create" and audit["result"] == "success"
    assert all(r.get("trace_id") for r in mine)
    assert len({r["trace_id"] for r in mine}) == 1


def test_orders_update_business_metrics(demo: tuple[httpx.Client, Any]) -> None:
    """An order moves revenue, the order-value histogram, inventory and the orders counter."""
    client, _ = demo
    order = client.post("/orders", json={"items": [{"product_id": "mouse", "quantity": 2}], "currency": "EUR"})
    assert order.status_code == 201, order.text
    body = order.json()
    assert body["amount"] == 39.0
    metrics = client.get("/metrics").text
    assert sample(metrics, "demo_revenue_total", currency="EUR") == 39.0
    assert sample(metrics, "demo_order_value_count", currency="EUR") == 1
    assert sample(metrics, "demo_inventory_level", product_id="mouse") == body["items"][0]["remaining_stock"]
    assert sample(metrics, "demo_orders_created_total", channel="api") == 1
    assert sample(metrics, "function_calls_total", function="create_order", status="success") == 1
    assert client.get(f"/orders/{body['id']}").json() == body


def test_order_beyond_stock_is_409_and_not_counted(demo: tuple[httpx.Client, Any]) -> None:
    """More units than in stock: 409, and no revenue recorded."""
    client, _ = demo
    response = client.post("/orders", json={"items": [{"product_id": "laptop", "quantity": 500}]})
    assert response.status_code == 409
    assert "in stock" in response.json()["detail"]
    assert sample(client.get("/metrics").text, "demo_revenue_total", currency="USD") in (None, 0.0)


def test_data_processing_skips_and_captures_bad_items(demo: tuple[httpx.Client, Any]) -> None:
    """Four good items and one bad: 4 processed, 1 failed, and the failure is an error group."""
    client, runtime = demo
    items = [{"id": i, "data": {"v": i}} for i in range(4)] + [{"id": 99, "data": "corrupted"}]
    result = client.post("/data/process", json=items).json()
    assert (result["processed"], result["failed"]) == (4, 1)
    assert stored_groups(runtime)["ItemError"]["count"] == 1


def test_payments_validation_and_limit_errors_are_captured(demo: tuple[httpx.Client, Any]) -> None:
    """422 for invalid input, 500 with an event id over the limit; both stored; the card never is."""
    client, runtime = demo
    runtime_payments = client.post("/payments", json={"amount": 25.0, "card_number": CARD})
    assert runtime_payments.status_code in (201, 402)  # 402: the simulated network declines 3 %
    assert client.post("/payments", json={"amount": -5, "card_number": CARD}).status_code == 422
    assert client.post("/payments", json={"amount": 10.0, "card_number": ""}).status_code == 422
    over = client.post("/payments", json={"amount": 20_000, "card_number": CARD})
    assert over.status_code == 500
    assert over.json()["event_id"]
    groups = stored_groups(runtime)
    assert groups["PaymentLimitExceeded"]["count"] == 1
    assert groups["PaymentLimitExceeded"]["category"] == "business_logic"
    assert groups["PaymentValidationError"]["count"] == 2
    detail = queries.get_group(runtime.engine, over.json()["event_id"], events=5)
    assert detail is not None and CARD not in json.dumps(detail)


def test_traffic_drives_every_route_with_failures(demo: tuple[httpx.Client, Any]) -> None:
    """The mix reaches every route, with 2xx, 4xx and 5xx answers and a progress line."""
    from kansoku.demo.traffic import TrafficStats, drive

    client, _ = demo
    progress, stats = io.StringIO(), TrafficStats()
    wanted = {"/users", "/orders", "/payments", "/data/process", "/products"}

    def seen_all() -> bool:  # polled by the driver; the deadline bounds it on a slow machine
        routes = {key.split(" ", 1)[1] for key in stats.by_route}
        return wanted <= routes and {2, 4, 5} <= {status // 100 for status in stats.by_status}

    asyncio.run(drive(str(client.base_url), rate=80, duration=60.0, seed=7, progress=progress,
                      stats=stats, should_stop=seen_all))
    routes = {key.split(" ", 1)[1] for key in stats.by_route}
    assert wanted <= routes
    classes = {status // 100 for status in stats.by_status}
    assert {2, 4, 5} <= classes
    assert stats.connection_errors == 0
    assert progress.getvalue().startswith("traffic: ") and "requests" in progress.getvalue()
