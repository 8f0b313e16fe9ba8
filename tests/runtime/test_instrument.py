"""The middleware inside the real runtime that `kansoku.instrument()` builds (store, errors, tracing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import kansoku
from kansoku import runtime as _runtime
from kansoku.runtime.asgi import KansokuMiddleware
from kansoku.store.tables import spans
from kansoku.testing import capture_logs, isolated_runtime

from .conftest import bare_app, fastapi_app


@pytest.fixture
def real_runtime(tmp_path: Path) -> Iterator[Any]:
    """The real runtime on a throwaway SQLite store, current for the test."""
    with isolated_runtime(tmp_path) as runtime:
        yield runtime


async def test_instrumented_fastapi_app_end_to_end(real_runtime: Any) -> None:
    """instrument(): templated metrics, a JSON 500 whose event id the error tracker made, readiness."""
    app = kansoku.instrument(fastapi_app())
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        with capture_logs() as records:
            assert (await client.get("/items/9")).status_code == 200
            failed = await client.get("/boom", headers={"X-Request-ID": "e2e-1"})
        metrics = (await client.get("/metrics")).text
        ready = await client.get("/ready")
    event_id = failed.json()["event_id"]
    assert failed.json() == {"error": "internal_server_error", "event_id": event_id}
    errors = [r for r in records if r.get("event") == "unhandled exception"]
    assert errors[0]["event_id"] == event_id and errors[0]["request_id"] == "e2e-1"
    assert 'http_requests_total{method="GET",route="/items/{item_id}",status="200"} 1.0' in metrics
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"


async def test_instrument_twice_does_not_double(real_runtime: Any) -> None:
    """A second instrument() on the same app changes nothing: one count, one access line."""
    app = kansoku.instrument(fastapi_app())
    assert kansoku.instrument(app) is app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1") as client:
        with capture_logs() as records:
            await client.get("/items/1")
    assert len([r for r in records if r.get("logger") == "kansoku.access"]) == 1
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert real_runtime.registry.get_sample_value("http_requests_total", labels) == 1.0


async def test_middleware_alone_sets_up_the_runtime(tmp_path: Path) -> None:
    """KansokuMiddleware(app, **settings) with no runtime builds kansoku's own from the settings."""
    try:
        app = KansokuMiddleware(bare_app, database_url=f"sqlite:///{tmp_path / 'k.db'}", strict=True,
                                dashboard=False)
        assert app.runtime is _runtime.current()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
            assert (await client.get("/anything")).text == "hello"
            assert (await client.get("/health")).json() == {"status": "ok"}
            assert (await client.get("/kansoku/api/errors")).status_code == 404  # dashboard off
    finally:
        _runtime.shutdown(5.0)



async def test_access_line_carries_the_ids_of_the_request_span(real_runtime: Any) -> None:
    """Under instrument() the access line names the request's server span, as stored."""
    app = kansoku.instrument(fastapi_app())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1") as client:
        with capture_logs() as records:
            await client.get("/items/3")
    (access,) = [r for r in records if r.get("logger") == "kansoku.access"]
    assert real_runtime.tracer_provider.force_flush(5000)
    with real_runtime.engine.connect() as conn:
        stored = conn.execute(select(spans.c.trace_id, spans.c.span_id, spans.c.name)).all()
    assert (access["trace_id"], access["span_id"], "GET /items/{item_id}") in [tuple(row) for row in stored]


async def test_one_server_span_per_request_with_fastapi_native_telemetry(real_runtime: Any) -> None:
    """FastAPI's own telemetry adds no spans under kansoku's, in the app or in a mounted FastAPI app."""
    from fastapi import FastAPI

    inner = FastAPI()

    @inner.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    outer = fastapi_app()
    outer.mount("/v2", inner)
    app = kansoku.instrument(outer)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1") as client:
        assert (await client.get("/items/3")).status_code == 200
        assert (await client.get("/v2/ping")).json() == {"pong": "yes"}
    assert real_runtime.tracer_provider.force_flush(5000)
    with real_runtime.engine.connect() as conn:
        stored = sorted(name for (name,) in conn.execute(select(spans.c.name)))
    assert stored == ["GET /items/{item_id}", "GET /v2/ping"]


def test_start_up_loads_only_what_the_first_request_needs(tmp_path: Path) -> None:
    """On an up-to-date store, instrument(), the lifespan, the first request and an alert pass with
    nothing to send import no Alembic, no alert delivery (httpx, Jinja2) and build no dashboard; the
    first dashboard request builds it."""
    import json
    import subprocess
    import sys
    import textwrap

    url = f"sqlite:///{tmp_path / 'k.db'}"
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        from fastapi import FastAPI
        import kansoku

        app = FastAPI()

        @app.get("/items/{{item_id}}")
        async def item(item_id: int):
            return {{"id": item_id}}

        app = kansoku.instrument(app, database_url={url!r}, dashboard_token="t0ken")

        def loaded():
            names = {{n.split(".")[0] for n in sys.modules}} | {{n for n in sys.modules if n.startswith("kansoku.web")}}
            return sorted(names & {{"alembic", "httpx", "jinja2", "kansoku.web"}})

        async def get(path, headers=()):
            statuses = []
            async def receive():
                return {{"type": "http.request", "body": b"", "more_body": False}}
            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])
            await app({{"type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1", "method": "GET",
                       "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
                       "root_path": "", "headers": list(headers), "client": ("127.0.0.1", 1),
                       "server": ("x", 80)}}, receive, send)
            return statuses

        async def main():
            inbox, replies = asyncio.Queue(), asyncio.Queue()
            task = asyncio.create_task(app({{"type": "lifespan", "asgi": {{"version": "3.0"}}, "state": {{}}}},
                                           inbox.get, replies.put))
            await inbox.put({{"type": "lifespan.startup"}})
            assert (await replies.get())["type"] == "lifespan.startup.complete"
            assert await get("/items/1") == [200]
            assert await kansoku.runtime.current().dispatcher.dispatch_once() == 0
            seen = [loaded()]
            assert await get("/kansoku/", [(b"authorization", b"Bearer t0ken")]) == [200]
            seen.append(loaded())
            open({str(tmp_path / "loaded.json")!r}, "w").write(json.dumps(seen))
            await inbox.put({{"type": "lifespan.shutdown"}})
            await replies.get()
            await task

        asyncio.run(main())
    """)
    from kansoku.store import migrations

    migrations.upgrade(url)
    subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    # (in a file: kansoku's log lines share the child's stdout)
    assert json.loads((tmp_path / "loaded.json").read_text()) == [[], ["jinja2", "kansoku.web"]]
