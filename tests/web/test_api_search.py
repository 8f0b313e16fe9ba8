"""The search API: token-protected, logs and traces in the query syntax, 400 for a bad query."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import kansoku
from kansoku.testing import isolated_runtime

TOKEN = "s3cret-token-for-tests"


def _app() -> Starlette:
    log = kansoku.get_logger("shop")

    async def hello(request: Request) -> PlainTextResponse:
        log.warning("stock low", sku=request.path_params["sku"])
        return PlainTextResponse("hi")

    return Starlette(routes=[Route("/items/{sku}", hello)])


async def test_search_api(tmp_path: Path) -> None:
    """Without the token 401; with it the lines and traces come back; bad input is 400/422, never 500."""
    with isolated_runtime(tmp_path, dashboard_token=TOKEN) as runtime:
        app = kansoku.instrument(_app())
        transport = httpx.ASGITransport(app=app)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/items/sku-9")).status_code == 200
            assert runtime.log_keeper is not None and runtime.tracer_provider is not None
            runtime.log_keeper.flush()
            runtime.tracer_provider.force_flush()
            assert (await client.get("/kansoku/api/logs", params={"q": "sku=sku-9"})).status_code == 401
            found = (await client.get("/kansoku/api/logs", params={"q": "sku=sku-9 level>=warning", "since": "1h"},
                                      headers=auth)).json()
            assert [(line["message"], line["level"]) for line in found["lines"]] == [("stock low", "warning")]
            traces = (await client.get("/kansoku/api/traces", params={"q": "route:/items/{sku} status=200"},
                                       headers=auth)).json()
            assert [t["trace_id"] for t in traces["traces"]] == [found["lines"][0]["trace_id"]]
            bad = await client.get("/kansoku/api/logs", params={"q": "level>=loud"}, headers=auth)
            assert bad.status_code == 400 and bad.json()["position"] == 7 and "loud" in bad.json()["detail"]
            assert (await client.get("/kansoku/api/logs", params={"limit": "x"}, headers=auth)).status_code == 422
            assert (await client.get("/kansoku/api/traces/xyz", headers=auth)).status_code == 422
            assert (await client.get("/kansoku/api/traces/" + "0" * 32, headers=auth)).status_code == 404
