"""One access-log line per request, with the route template, for FastAPI, Starlette and bare ASGI apps."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kansoku.runtime.asgi import KansokuMiddleware

from .conftest import bare_app, fastapi_app, starlette_app


def _access(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("logger") == "kansoku.access"]


async def test_fastapi_line_has_every_field(runtime: Any, client_for: Any, logged: list[Any]) -> None:
    """The line names method, route template, path, status, duration, size, client, agent and id."""
    app = fastapi_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    async with client_for(app) as client:
        await client.get("/items/42?secret=1", headers={"User-Agent": "probe/2", "X-Request-ID": "r-1"})
    (line,) = _access(logged)
    assert line["duration_ms"] >= 0
    line.pop("duration_ms")
    assert {k: line[k] for k in ("event", "method", "route", "path", "status", "response_size", "client",
                                 "user_agent", "request_id", "level")} == {
        "event": "request", "method": "GET", "route": "/items/{item_id}", "path": "/items/42", "status": 200,
        "response_size": len(b'{"item_id":42}'), "client": "127.0.0.1", "user_agent": "probe/2",
        "request_id": "r-1", "level": "info",
    }


async def test_one_line_per_request(fastapi_client: Any, logged: list[Any]) -> None:
    """N requests make exactly N access lines, each with its own route template."""
    for i in range(5):
        await fastapi_client.get(f"/items/{i}")
    await fastapi_client.post("/items", content=b"x" * 10)
    await fastapi_client.get("/nope")
    routes = [line["route"] for line in _access(logged)]
    assert routes == ["/items/{item_id}"] * 5 + ["/items", "<unmatched>"]


async def test_starlette_routes_and_mounts_are_templated(runtime: Any, client_for: Any,
                                                         logged: list[Any]) -> None:
    """A plain Starlette app: route templates, mounted routes prefixed with the mount path."""
    async with client_for(KansokuMiddleware(starlette_app(), runtime=runtime)) as client:
        assert (await client.get("/users/alice")).status_code == 200
        assert (await client.get("/shop/orders/991")).text == "991"
        assert (await client.get("/shop/nothing")).status_code == 404
    assert [line["route"] for line in _access(logged)] == ["/users/{user_id}", "/shop/orders/{order_id}",
                                                          "/shop/{path}"]


async def test_starlette_convertors_are_not_part_of_the_route(runtime: Any, client_for: Any,
                                                             logged: list[Any]) -> None:
    """`/users/{user_id:str}` is labelled `/users/{user_id}` in the access line and the metrics, mounted
    routes included, as every other framework and OpenTelemetry's `http.route` spell a template."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def echo(request: Any) -> Any:
        return PlainTextResponse(str(request.path_params))

    app = Starlette(routes=[Route("/users/{user_id:str}", echo),
                            Mount("/shop", routes=[Route("/orders/{order_id:int}", echo)])])
    async with client_for(KansokuMiddleware(app, runtime=runtime)) as client:
        assert (await client.get("/users/alice")).status_code == 200
        assert (await client.get("/shop/orders/991")).status_code == 200
    assert [line["route"] for line in _access(logged)] == ["/users/{user_id}", "/shop/orders/{order_id}"]
    assert runtime.value("http_requests_total", method="GET", route="/users/{user_id}", status="200") == 1.0
    assert runtime.value("http_requests_total", method="GET", route="/shop/orders/{order_id}", status="200") == 1.0


async def test_bare_asgi_app_paths_share_one_route(runtime: Any, client_for: Any, logged: list[Any]) -> None:
    """A bare ASGI app has no routes: every path gets the unmatched route value."""
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        for path in ("/a", "/b/c", "/d?e=f"):
            assert (await client.get(path)).text == "hello"
    assert [(line["route"], line["path"]) for line in _access(logged)] == [
        ("<unmatched>", "/a"), ("<unmatched>", "/b/c"), ("<unmatched>", "/d")]


async def test_excluded_paths_have_no_line_but_are_counted(fastapi_client: Any, runtime: Any,
                                                          logged: list[Any]) -> None:
    """/metrics, /health and /ready (the default exclusions) write no access line; other paths still count."""
    for path in ("/health", "/ready", "/metrics", "/items/1"):
        await fastapi_client.get(path)
    assert [line["path"] for line in _access(logged)] == ["/items/1"]


async def test_probes_are_not_app_traffic(fastapi_client: Any, runtime: Any) -> None:
    """Scrapes of /metrics and polls of /health and /ready are not counted in http_requests_total."""
    for path in ("/health", "/ready", "/metrics", "/metrics"):
        assert (await fastapi_client.get(path)).status_code == 200
    for route in ("/health", "/ready", "/metrics"):
        assert runtime.value("http_requests_total", method="GET", route=route, status="200") is None


async def test_own_routes_observed_when_asked(make_runtime: Any, client_for: Any, logged: list[Any]) -> None:
    """observe_exclude names the paths left out of the RED metrics: an app path pattern keeps it out."""
    runtime = make_runtime(observe_exclude=("/static/*",))
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        for path in ("/static/app.css", "/static/img/x.png", "/api"):
            await client.get(path)
    assert runtime.value("http_requests_total", method="GET", route="<unmatched>", status="200") == 1.0


async def test_excluded_prefixes(make_runtime: Any, client_for: Any, logged: list[Any]) -> None:
    """An exclusion ending in `*` excludes every path under it."""
    runtime = make_runtime(access_log_exclude=("/static/*", "/ping"))
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        for path in ("/static/app.css", "/static/img/x.png", "/ping", "/pingx", "/api"):
            await client.get(path)
    assert [line["path"] for line in _access(logged)] == ["/pingx", "/api"]


async def test_access_log_can_be_turned_off(make_runtime: Any, client_for: Any, logged: list[Any]) -> None:
    """access_log=False writes no access lines at all."""
    async with client_for(KansokuMiddleware(bare_app, runtime=make_runtime(access_log=False))) as client:
        await client.get("/x")
    assert _access(logged) == []


@pytest.mark.parametrize(("trusted", "peer", "forwarded", "client"), [
    ((), "10.0.0.5", "203.0.113.9", "10.0.0.5"),                       # no trusted proxies: header ignored
    (("10.0.0.0/8",), "10.0.0.5", "203.0.113.9", "203.0.113.9"),       # trusted network
    (("10.0.0.5",), "10.0.0.5", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # rightmost untrusted hop
    (("10.0.0.0/8",), "10.0.0.5", "203.0.113.9, 10.1.1.1", "203.0.113.9"),    # skips trusted hops
    (("10.0.0.0/8",), "192.0.2.7", "203.0.113.9", "192.0.2.7"),        # peer not trusted: header ignored
    (("10.0.0.0/8",), "10.0.0.5", "not-an-ip", "10.0.0.5"),            # garbage is not an address
])
async def test_client_honours_forwarded_for_only_from_trusted_proxies(
    make_runtime: Any, client_for: Any, logged: list[Any], trusted: tuple[str, ...], peer: str,
    forwarded: str, client: str,
) -> None:
    """X-Forwarded-For is believed only when the peer is a configured trusted proxy (or network)."""
    app = KansokuMiddleware(bare_app, runtime=make_runtime(trusted_proxies=trusted))
    async with client_for(app, client=(peer, 4000)) as http:
        await http.get("/", headers={"X-Forwarded-For": forwarded})
    assert _access(logged)[0]["client"] == client


async def test_root_path_is_not_part_of_the_route(runtime: Any, client_for: Any, logged: list[Any]) -> None:
    """An app served under a root_path (a proxy prefix) still reports its own templates."""
    app = KansokuMiddleware(starlette_app(), runtime=runtime)
    transport = httpx.ASGITransport(app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/api/users/bob")).status_code == 200
    assert _access(logged)[0]["route"] == "/users/{user_id}"


async def test_secrets_from_the_client_are_redacted(runtime: Any, client_for: Any, logged: list[Any]) -> None:
    """A token in the path or the user agent never reaches the access line."""
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        await client.get("/reset/token=abc123secret", headers={"User-Agent": "curl Bearer xyz789secret"})
    (line,) = _access(logged)
    assert "abc123secret" not in line["path"] and "xyz789secret" not in line["user_agent"]
    assert line["path"].startswith("/reset/token=") and "[REDACTED]" in line["user_agent"]
