"""The chapter's 8.2 example (OrderService behind POST /orders), ported by following docs/from-the-chapter.md.

The chapter's `MetricsCollector` made its metrics when the module was imported; so does this port,
before `kansoku.instrument(app)`: `kansoku.counter` / `gauge` / `register_metric` are get-or-create
and are served on /metrics whenever they were made. `@measure_performance` -> `@kansoku.timed`
(its extra labels become the `module` label), `MetricsMiddleware` and the hand-written /metrics
and /health -> the middleware's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

import kansoku

# The chapter's increment_counter / set_gauge / observe_histogram names, made at import time.
revenue = kansoku.counter("revenue", "Revenue of created orders.", ["currency"])  # served as revenue_total
inventory = kansoku.gauge("inventory_level", "Units in stock, by product.", ["product_id"])
order_value = kansoku.register_metric(kansoku.MetricConfig(
    "order_value", "Order amounts.", "histogram", labels=("currency",), buckets=(10, 100, 1000, 10000)))


class OrderService:
    """注文サービス例 (the chapter's OrderService)."""

    @kansoku.timed("create_order", module="order")
    @kansoku.track_business_metric("orders_created", labels={"channel": "api"})
    async def create_order(self, order_data: dict[str, Any]) -> dict[str, Any]:
        """Process the order, then the revenue and inventory metrics."""
        order = await self._process_order(order_data)
        revenue.labels(order["currency"]).inc(order["amount"])
        order_value.labels(order["currency"]).observe(order["amount"])
        for item in order["items"]:
            inventory.labels(item["product_id"]).set(item["remaining_stock"])
        return order

    async def _process_order(self, order_data: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"id": "order_123", "amount": order_data["amount"], "currency": "USD",
                "items": [{"product_id": "prod_1", "remaining_stock": 100}]}


app = FastAPI(title="orders")
kansoku.instrument(app)
order_service = OrderService()


@app.post("/orders")
async def create_order_endpoint(order_data: dict[str, Any]) -> dict[str, Any]:
    """注文作成エンドポイント."""
    order = await order_service.create_order(order_data)
    return {"order": order}
