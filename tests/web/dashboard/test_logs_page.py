"""The logs page, trace search on the traces page, a trace's log lines, an error group's traces."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import kansoku
from kansoku.testing import isolated_runtime

TOKEN = "dashboard-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _app() -> Starlette:
    log = kansoku.get_logger("shop.orders")

    async def order(request: Request) -> PlainTextResponse:
        log.info("order placed", order_id=request.path_params["oid"])
        if request.query_params.get("fail"):
            raise ValueError("card <declined>")
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/orders/{oid}", order)])


async def test_logs_page_trace_page_and_error_group(tmp_path: Path) -> None:
    """A request's line is on the logs page by field=value with links to its trace, request and error group;
    the trace page shows the line; the traces page finds the failed trace; the group lists its trace."""
    unique = uuid.uuid4().hex
    with isolated_runtime(tmp_path, dashboard_token=TOKEN) as runtime:
        app = kansoku.instrument(_app())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://testserver", headers=AUTH) as client:
            assert (await client.get(f"/orders/{unique}", params={"fail": "1"})).status_code == 500
            assert runtime.log_keeper is not None and runtime.tracer_provider is not None
            runtime.log_keeper.flush()
            runtime.tracer_provider.force_flush()
            runtime.errors.flush()
            page = await client.get("/kansoku/logs", params={"q": f"order_id={unique}"})
            assert page.status_code == 200
            text = html.unescape(page.text)
            assert "order placed" in text and 'aria-current="page">Logs' in page.text
            trace_id = re.search(r'/kansoku/traces/([0-9a-f]{32})"', page.text).group(1)  # type: ignore[union-attr]
            assert "this request's lines" in text
            everything = html.unescape((await client.get("/kansoku/logs")).text)
            event_id = re.search(r'/kansoku/errors/([0-9a-f]{32})">error group', everything).group(1)  # type: ignore[union-attr]
            trace = html.unescape((await client.get(f"/kansoku/traces/{trace_id}")).text)
            assert "Log lines of this trace" in trace and "order placed" in trace and "unhandled exception" in trace
            found = html.unescape((await client.get("/kansoku/traces", params={"q": "status>=500"})).text)
            assert f"/kansoku/traces/{trace_id}" in found and "Matching" in found
            group = html.unescape((await client.get(f"/kansoku/errors/{event_id}")).text)
            assert "Traces of this error" in group and f"/kansoku/traces/{trace_id}" in group


async def test_bad_queries_are_400_with_a_caret(tmp_path: Path) -> None:
    """A bad query on the logs and traces pages answers 400 with the reason and a caret, never a 500."""
    with isolated_runtime(tmp_path, dashboard_token=TOKEN) as _:
        app = kansoku.instrument(_app())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                     headers=AUTH) as client:
            for path in ("/kansoku/logs", "/kansoku/traces"):
                response = await client.get(path, params={"q": "level>=loud" if "logs" in path else "status=weird"})
                assert response.status_code == 400
                assert "^" in response.text and 'role="alert"' in response.text
