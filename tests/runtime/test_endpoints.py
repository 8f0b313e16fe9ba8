"""The endpoints the middleware answers itself: /health, /ready, /metrics, and the prefixed web app."""

from __future__ import annotations

import gzip
from types import SimpleNamespace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kansoku.runtime.asgi import KansokuMiddleware
from kansoku.runtime.endpoints import send_json

from .conftest import bare_app, fastapi_app


async def test_health_is_always_ok(fastapi_client: httpx.AsyncClient, runtime: Any) -> None:
    """Liveness answers 200 {"status": "ok"} even while readiness fails."""
    runtime.readiness.register("store", lambda: "unreachable")
    response = await fastapi_client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    head = await fastapi_client.head("/health")
    assert (head.status_code, head.content) == (200, b"")


async def test_ready_names_failing_checks(fastapi_client: httpx.AsyncClient, runtime: Any) -> None:
    """Readiness is 503 naming the failing checks (a raising check fails too), 200 when all pass."""
    runtime.readiness.register("store", lambda: None)
    ok = await fastapi_client.get("/ready")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok", "checks": {"store": "ok"}})

    def explode() -> str | None:
        raise ConnectionError("refused")

    runtime.readiness.register("queue:errors", lambda: "queue 'errors' saturated (9500/10000)")
    runtime.readiness.register("broker", explode)
    failing = await fastapi_client.get("/ready")
    assert failing.status_code == 503
    assert failing.json() == {
        "status": "unavailable",
        "checks": {"broker": "check raised ConnectionError: refused",
                   "queue:errors": "queue 'errors' saturated (9500/10000)", "store": "ok"},
        "failing": ["broker", "queue:errors"],
    }


async def test_ready_scrubs_secrets_from_problems(fastapi_client: httpx.AsyncClient, runtime: Any) -> None:
    """A failing check quoting a connection string does not show its password on /ready."""
    runtime.readiness.register("store", lambda: "cannot connect to postgresql://app:hunter2@db:5432/k")
    failing = await fastapi_client.get("/ready")
    assert failing.status_code == 503
    assert "hunter2" not in failing.text
    assert failing.json()["checks"]["store"].startswith("cannot connect to postgresql://app:")


async def test_endpoints_work_for_a_bare_asgi_app(runtime: Any, client_for: Any) -> None:
    """No routing needed: a bare ASGI app behind the middleware has /metrics, /health and /ready."""
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/ready")).status_code == 200
        assert "http_requests" in (await client.get("/metrics")).text
        assert (await client.post("/health")).text == "hello"  # other methods go to the app


async def test_metrics_text_format(fastapi_client: httpx.AsyncClient) -> None:
    """Default exposition: Prometheus text 0.0.4 that prometheus_client's parser reads."""
    await fastapi_client.get("/items/1")
    response = await fastapi_client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families["http_requests"].samples}
    assert samples[("http_requests_total", (("method", "GET"), ("route", "/items/{item_id}"),
                                            ("status", "200")))] == 1.0


async def test_metrics_gzip_when_accepted(fastapi_client: httpx.AsyncClient) -> None:
    """Accept-Encoding: gzip gets a gzip body."""
    response = await fastapi_client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert b"http_requests_in_progress" in response.content  # httpx decoded it
    request = fastapi_client.build_request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    raw = await fastapi_client.send(request, stream=True)
    body = b"".join([chunk async for chunk in raw.aiter_raw()])
    assert gzip.decompress(body).startswith(b"# HELP")


class FakeTracer:
    """The RequestTracer interface: start(scope) -> handle with trace_id, finish(handle, ...)."""

    def __init__(self) -> None:
        self.finished: list[tuple[Any, ...]] = []

    def start(self, scope: Any) -> Any:
        return SimpleNamespace(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")

    def finish(self, handle: Any, status: int, route: str | None, exc: BaseException | None) -> None:
        self.finished.append((handle.trace_id, status, route, type(exc).__name__ if exc else None))


async def test_openmetrics_with_trace_exemplars(runtime: Any, client_for: Any) -> None:
    """A scraper asking for OpenMetrics gets it, with the trace id as the latency exemplar."""
    runtime.request_tracer = tracer = FakeTracer()
    app = fastapi_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    async with client_for(app) as client:
        await client.get("/items/5")
        await client.get("/boom")
        await client.get("/nope")
        accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
        response = await client.get("/metrics", headers=accept)
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert '# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"}' in response.text
    assert response.text.rstrip().endswith("# EOF")
    assert tracer.finished[:3] == [
        ("4bf92f3577b34da6a3ce929d0e0e4736", 200, "/items/{item_id}", None),
        ("4bf92f3577b34da6a3ce929d0e0e4736", 500, "/boom", "ValueError"),
        ("4bf92f3577b34da6a3ce929d0e0e4736", 404, None, None),
    ]


async def test_metrics_token(make_runtime: Any, client_for: Any) -> None:
    """With metrics_token, /metrics needs `Authorization: Bearer <token>`."""
    app = KansokuMiddleware(bare_app, runtime=make_runtime(metrics_token="s3cret"))
    async with client_for(app) as client:
        denied = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert (denied.status_code, denied.json()) == (401, {"error": "unauthorized"})
    assert denied.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert wrong.status_code == 401
    assert allowed.status_code == 200


async def test_metrics_allowlist(make_runtime: Any, client_for: Any) -> None:
    """With metrics_allow, only clients in those networks may scrape."""
    runtime = make_runtime(metrics_allow=("10.0.0.0/8", "::1"))
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime), client=("10.2.3.4", 1)) as client:
        assert (await client.get("/metrics")).status_code == 200
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime), client=("192.0.2.1", 1)) as client:
        response = await client.get("/metrics")
    assert (response.status_code, response.json()) == (403, {"error": "forbidden"})


async def test_prefix_goes_to_the_web_app_with_root_path(runtime: Any, client_for: Any) -> None:
    """Paths under route_prefix go to runtime.web_app, with the prefix added to root_path."""
    seen: list[tuple[str, str]] = []

    async def web_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["root_path"], scope["path"]))
        await send_json(send, 200, {"web": True})

    runtime.web_app = web_app
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        assert (await client.get("/kansoku/api/errors")).json() == {"web": True}
        assert (await client.get("/kansoku")).json() == {"web": True}
        assert (await client.get("/kansokuX")).text == "hello"  # not under the prefix
    assert seen == [("/kansoku", "/kansoku/api/errors"), ("/kansoku", "/kansoku")]


async def test_prefix_without_web_app_is_json_404(runtime: Any, client_for: Any) -> None:
    """With no web app (dashboard off) the prefix answers a JSON 404, not the app."""
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        response = await client.get("/kansoku/api/errors")
    assert (response.status_code, response.json()) == (404, {"error": "not_found"})


async def test_prefixed_starlette_web_app_routes_are_templated(runtime: Any, client_for: Any,
                                                              logged: list[Any]) -> None:
    """Routes of the web app get the prefix in their template."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def group(request: Any) -> Any:
        return PlainTextResponse(request.path_params["group_id"])

    runtime.web_app = Starlette(routes=[Route("/api/errors/{group_id}", group)])
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        assert (await client.get("/kansoku/api/errors/17")).text == "17"
    routes = [r["route"] for r in logged if r.get("logger") == "kansoku.access"]
    assert routes == ["/kansoku/api/errors/{group_id}"]


async def test_double_middleware_does_the_work_once(runtime: Any, client_for: Any, logged: list[Any]) -> None:
    """Two KansokuMiddleware layers (instrument twice) count and log each request once."""
    app = fastapi_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    async with client_for(app) as client:
        response = await client.get("/items/3")
    assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]
    assert len([r for r in logged if r.get("logger") == "kansoku.access"]) == 1
    assert runtime.value("http_requests_total", method="GET", route="/items/{item_id}", status="200") == 1.0


async def test_in_progress_counts_live_requests(runtime: Any, client_for: Any) -> None:
    """http_requests_in_progress shows a request while its handler runs, by route, and 0 after."""
    import asyncio

    from fastapi import FastAPI

    app = FastAPI()
    entered, release = asyncio.Event(), asyncio.Event()

    @app.get("/slow/{n}")
    async def slow(n: int) -> dict[str, int]:
        entered.set()
        await release.wait()
        return {"n": n}

    app.add_middleware(KansokuMiddleware, runtime=runtime)
    async with client_for(app) as client:
        pending = asyncio.create_task(client.get("/slow/1"))
        await entered.wait()
        during = runtime.value("http_requests_in_progress", method="GET", route="/slow/{n}")
        release.set()
        await pending
    assert during == 1.0
    assert runtime.value("http_requests_in_progress", method="GET", route="/slow/{n}") is None


async def test_request_and_response_sizes(fastapi_client: httpx.AsyncClient, runtime: Any) -> None:
    """Request sizes come from Content-Length, response sizes from the bytes sent."""
    await fastapi_client.post("/items", content=b"x" * 1000)
    labels = {"method": "POST", "route": "/items"}
    assert runtime.value("http_request_size_bytes_sum", **labels) == 1000.0
    assert runtime.value("http_response_size_bytes_sum", **labels) == len(b'{"size":1000}')
    assert runtime.value("http_request_duration_seconds_count", **labels) == 1.0


async def test_request_stats_are_recorded(fastapi_client: httpx.AsyncClient, runtime: Any) -> None:
    """Each request is also counted in the per-minute statistics (4xx and 5xx apart)."""
    await fastapi_client.get("/items/1")
    await fastapi_client.get("/nope")
    await fastapi_client.get("/boom")
    (row,) = runtime.request_stats.pending().values()
    assert (row["requests"], row["errors_4xx"], row["errors_5xx"]) == (3, 1, 1)


def test_an_informational_check_is_reported_but_keeps_ready() -> None:
    """A destination outage (Sentry, the collector) is listed as degraded; /ready stays 200."""
    from kansoku.runtime.endpoints import ready_report

    results = {"store": None, "exports": "otlp unreachable for 12s: HTTP 503"}
    assert ready_report(results, {"exports"}) == (200, {
        "status": "ok", "checks": {"exports": "otlp unreachable for 12s: HTTP 503", "store": "ok"},
        "degraded": ["exports"]})
    assert ready_report(results)[0] == 503
