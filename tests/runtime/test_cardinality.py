"""Label values stay bounded: ids in paths, random unmatched paths and odd methods add no series."""

from __future__ import annotations

import random
import string
from typing import Any

from kansoku.metrics import HttpMetrics
from kansoku.runtime.asgi import KansokuMiddleware
from kansoku.settings import load_settings

from .conftest import fastapi_app


def _series(runtime: Any) -> int:
    families = runtime.registry.collect()
    return sum(len(family.samples) for family in families if family.name.startswith("http_"))


async def test_ids_and_random_paths_leave_the_series_count_constant(runtime: Any, client_for: Any) -> None:
    """1,000 distinct item ids and 1,000 random unmatched paths: the series count does not move."""
    app = fastapi_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    rng = random.Random(7)
    async with client_for(app) as client:
        await client.get("/items/0")
        await client.get("/unmatched-warmup")
        before = _series(runtime)
        for item_id in range(1, 1001):
            assert (await client.get(f"/items/{item_id}")).status_code == 200
        for _ in range(1000):
            path = "/" + "/".join("".join(rng.choices(string.ascii_lowercase + string.digits, k=8))
                                  for _ in range(rng.randint(1, 4)))
            assert (await client.get(path)).status_code == 404
    assert _series(runtime) == before
    items = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert runtime.value("http_requests_total", **items) == 1001.0
    assert runtime.value("http_requests_total", method="GET", route="<unmatched>", status="404") == 1001.0


async def test_unknown_methods_share_one_value(runtime: Any, client_for: Any) -> None:
    """Made-up methods all count under `_OTHER`."""
    app = fastapi_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    async with client_for(app) as client:
        for method in ("BREW", "PURGE", "X" * 50):
            await client.request(method, "/items/1")
    other = {"method": "_OTHER", "route": "/items/{item_id}", "status": "405"}
    assert runtime.value("http_requests_total", **other) == 3.0


def test_route_values_are_capped() -> None:
    """Past max_routes distinct templates (a parametrised mount, say) routes fold into `<other>`."""
    from prometheus_client import CollectorRegistry

    metrics = HttpMetrics(CollectorRegistry(), load_settings(), max_routes=3)
    labels = [metrics.route_label(f"/r{i}") for i in range(6)]
    assert labels == ["/r0", "/r1", "/r2", "<other>", "<other>", "<other>"]
    assert metrics.route_label("/r1") == "/r1"
    assert metrics.route_label("/" + "x" * 300) == "<other>"


def test_invalid_status_is_one_value() -> None:
    """A status outside 100-599 from a broken app is exported as `invalid`."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, load_settings())
    for status in (0, 42, 1000, 70000):
        metrics.observe("GET", "/x", status, 0.01, 0, 0)
    assert registry.get_sample_value("http_requests_total", {"method": "GET", "route": "/x",
                                                             "status": "invalid"}) == 4.0
