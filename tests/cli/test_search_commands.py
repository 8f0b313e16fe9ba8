"""`kansoku logs search|tail`, `kansoku traces search|show`: a line logged in a served request is found."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Kansoku, Result, Served

Serve = Callable[..., Served]

SHOP = """
import kansoku
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

log = kansoku.get_logger("shop.orders")

async def order(request):
    log.info("order placed", order_id=request.path_params["oid"], amount=12.5)
    if request.query_params.get("fail"):
        raise RuntimeError("payment gateway down")
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/orders/{oid}", order)])
"""


def _until(call: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll `call` until it returns something truthy, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = call()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _lines(result: Result) -> list[dict[str, Any]]:
    assert result.code == 0, result.stderr
    return list(json.loads(result.stdout)["lines"])


@pytest.mark.slow
def test_line_in_a_served_request_is_found_everywhere(serve: Serve, kansoku: Kansoku, tmp_path: Path,
                                                      port: int) -> None:
    """A line with a unique field value, logged in a request of `kansoku run`, is found within 5 s by the
    CLI and the API with its trace id, and `traces show` / the trace API list it with the trace's spans."""
    (tmp_path / "shop.py").write_text(textwrap.dedent(SHOP))
    base = f"http://127.0.0.1:{port}"
    served = serve("run", "shop:app", "--port", str(port))
    served.wait_http(f"{base}/health")
    unique = uuid.uuid4().hex
    assert httpx.get(f"{base}/orders/{unique}").status_code == 200
    lines = _until(lambda: _lines(kansoku("logs", "search", f"order_id={unique}", "--json")))
    assert [line["message"] for line in lines] == ["order placed"]
    trace_id = lines[0]["trace_id"]
    assert len(trace_id) == 32 and lines[0]["attributes"]["amount"] == 12.5
    api = httpx.get(f"{base}/kansoku/api/logs", params={"q": f"order_id={unique}"}).json()
    assert [line["trace_id"] for line in api["lines"]] == [trace_id]
    trace = _until(lambda: (t := httpx.get(f"{base}/kansoku/api/traces/{trace_id}").json()).get("spans") and t)
    assert [s["name"] for s in trace["spans"]] == ["GET /orders/{oid}"]
    assert [line["message"] for line in trace["logs"]] == ["order placed", "request"]
    shown = kansoku("traces", "show", trace_id)
    assert shown.code == 0 and "GET /orders/{oid}" in shown.stdout and "order placed" in shown.stdout
    assert served.interrupt() == 0


@pytest.mark.slow
def test_traces_search_and_tail(serve: Serve, kansoku: Kansoku, tmp_path: Path, port: int) -> None:
    """traces search finds the failed request by status and error; logs tail prints lines as they come."""
    (tmp_path / "shop.py").write_text(textwrap.dedent(SHOP))
    base = f"http://127.0.0.1:{port}"
    served = serve("run", "shop:app", "--port", str(port))
    served.wait_http(f"{base}/health")
    assert httpx.get(f"{base}/orders/ok-1").status_code == 200
    assert httpx.get(f"{base}/orders/bad-1", params={"fail": "1"}).status_code == 500

    def failed() -> list[dict[str, Any]]:
        result = kansoku("traces", "search", "status>=500 route:/orders/{oid}", "--json")
        assert result.code == 0, result.stderr
        return list(json.loads(result.stdout)["traces"])

    (trace,) = _until(failed)
    assert (trace["http_status"], trace["status"], trace["route"]) == (500, "ERROR", "/orders/{oid}")
    errors = json.loads(kansoku("traces", "search", "error=true", "--json").stdout)["traces"]
    assert [t["trace_id"] for t in errors] == [trace["trace_id"]]
    tail = kansoku("logs", "tail", "order_id=bad-1", "--polls", "1", "--interval", "0.1")
    assert tail.code == 0 and "order placed" in tail.stdout and "ok-1" not in tail.stdout
    assert served.interrupt() == 0


def test_bad_query_is_a_usage_error_with_a_caret(kansoku: Kansoku) -> None:
    """A bad query exits 2 and shows the reason and a caret under the offending part."""
    result = kansoku("logs", "search", "level>=loud")
    assert result.code == 2
    assert "unknown level 'loud'" in result.stderr and "         ^^^^" in result.stderr
    assert kansoku("traces", "show", "not-a-trace").code == 2
    assert kansoku("traces", "show", "0" * 32).code == 5
