"""Self-traffic stays out: /metrics, /health, /ready, the dashboard and its API are not in traces, RED
metrics or stored logs unless asked for (observe_exclude)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import kansoku
from kansoku.store.search import search_logs
from kansoku.store.trace_search import search_traces
from kansoku.testing import isolated_runtime


def _app() -> Starlette:
    log = kansoku.get_logger("shop")

    async def item(request: Request) -> PlainTextResponse:
        log.info("item read", sku=request.path_params["sku"])
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/items/{sku}", item)])


def _routes(metrics: str) -> set[str]:
    return {sample.labels["route"] for family in text_string_to_metric_families(metrics)
            for sample in family.samples if sample.name == "http_requests_total"}


async def _mixed_traffic(client: httpx.AsyncClient) -> str:
    """App requests interleaved with a scraper, probes and an open dashboard polling its API."""
    async def app_traffic() -> None:
        for n in range(40):
            assert (await client.get(f"/items/{n}")).status_code == 200

    async def operator() -> None:
        for _ in range(10):
            for path in ("/metrics", "/health", "/ready", "/kansoku/", "/kansoku/traces", "/kansoku/api/logs",
                         "/kansoku/api/errors"):
                await client.get(path)

    await asyncio.gather(app_traffic(), operator())
    return (await client.get("/metrics")).text


async def _run(tmp_path: Path, **overrides: Any) -> tuple[set[str], set[str], set[str]]:
    with isolated_runtime(tmp_path, trace_store_rate=0, log_store_rate=0, **overrides) as runtime:
        app = kansoku.instrument(_app())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            metrics = await _mixed_traffic(client)
        assert runtime.log_keeper is not None and runtime.tracer_provider is not None
        runtime.log_keeper.flush()
        runtime.tracer_provider.force_flush()
        traces = {t["route"] for t in search_traces(runtime.engine, "", limit=500)["traces"]}
        paths = {line["attributes"].get("path") for line in search_logs(runtime.engine, "", limit=1000)["lines"]}
    return _routes(metrics), traces, paths - {None}


async def test_only_the_apps_routes_by_default(tmp_path: Path) -> None:
    """Under app traffic, scrapes and an open dashboard, traces, RED metrics and stored lines hold only the app."""
    metrics, traces, paths = await _run(tmp_path)
    assert metrics == {"/items/{sku}"}
    assert traces == {"/items/{sku}"}
    assert paths == {f"/items/{n}" for n in range(40)}


async def test_self_traffic_when_asked(tmp_path: Path) -> None:
    """observe_exclude=[] traces kansoku's own routes and stores their lines (probes are never RED
    metrics: a scraper's poll is not traffic)."""
    metrics, traces, paths = await _run(tmp_path, observe_exclude=())
    assert metrics == {"/items/{sku}", "<unmatched>"}  # the dashboard's requests, unmatched by the app
    assert "/health" in traces and "/kansoku/api/logs" in paths
