"""Request ids: accepted when safe, replaced otherwise, echoed on every response, bound to the context."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kansoku.context import propagate_to_threads
from kansoku.runtime.asgi import KansokuMiddleware, new_request_id, valid_request_id

from .conftest import bare_app, fastapi_app


def _access(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("logger") == "kansoku.access"]


async def test_valid_incoming_id_is_kept_and_echoed(fastapi_client: httpx.AsyncClient,
                                                    logged: list[Any]) -> None:
    """A safe X-Request-ID comes back unchanged and is the id on the access line."""
    wanted = "req-2024.07:abc/DEF+01=@_"
    response = await fastapi_client.get("/items/7", headers={"X-Request-ID": wanted})
    assert response.headers["x-request-id"] == wanted
    assert _access(logged)[0]["request_id"] == wanted


@pytest.mark.parametrize("bad", [
    "x" * 129,                 # too long
    "abc\tdef",                # control character
    "abc def",                 # space is not in the safe set
    "caf\xe9",                 # non-ASCII (latin-1 byte on the wire)
    "",                        # empty
    "<script>",                # markup characters
])
async def test_unsafe_incoming_id_is_replaced(fastapi_client: httpx.AsyncClient, bad: str) -> None:
    """An id that is too long, has control or non-ASCII characters, or is empty gets replaced."""
    response = await fastapi_client.get("/items/7", headers=[(b"x-request-id", bad.encode("latin-1"))])
    echoed = response.headers["x-request-id"]
    assert echoed != bad
    assert valid_request_id(echoed.encode())
    assert len(echoed) == 32


async def test_longest_allowed_id_is_kept(fastapi_client: httpx.AsyncClient) -> None:
    """Exactly 128 safe characters is still accepted."""
    wanted = "a" * 128
    response = await fastapi_client.get("/items/7", headers={"X-Request-ID": wanted})
    assert response.headers["x-request-id"] == wanted


async def test_generated_ids_are_unique_hex(fastapi_client: httpx.AsyncClient) -> None:
    """Without an incoming id every response gets a new 32-hex-digit id."""
    ids = {(await fastapi_client.get("/items/1")).headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert valid_request_id(new_request_id().encode())


async def test_id_is_echoed_on_errors_404_and_kansoku_endpoints(fastapi_client: httpx.AsyncClient) -> None:
    """Every response carries exactly one X-Request-ID: 404s, 500s, /metrics, /health."""
    for path in ("/nowhere", "/boom", "/missing", "/metrics", "/health", "/ready"):
        response = await fastapi_client.get(path, headers={"X-Request-ID": "same-id"})
        assert response.headers.get_list("x-request-id") == ["same-id"], path


async def test_app_set_request_id_header_is_replaced(runtime: Any, client_for: Any) -> None:
    """An id header the app set itself is replaced by the request's id, never duplicated."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"X-Request-ID", b"app-made")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async with client_for(KansokuMiddleware(app, runtime=runtime)) as client:
        response = await client.get("/", headers={"X-Request-ID": "from-client"})
    assert response.headers.get_list("x-request-id") == ["from-client"]


async def test_header_name_is_configurable(make_runtime: Any, client_for: Any) -> None:
    """settings.request_id_header names the header read and written."""
    runtime = make_runtime(request_id_header="X-Correlation-ID")
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        response = await client.get("/", headers={"X-Correlation-ID": "corr-1"})
    assert response.headers["x-correlation-id"] == "corr-1"
    assert "x-request-id" not in response.headers


async def test_id_is_bound_in_handler_tasks_and_threads(fastapi_client: httpx.AsyncClient,
                                                       logged: list[Any]) -> None:
    """Logs in the handler, and tasks and threads it starts, carry the request id."""
    propagate_to_threads()  # instrument() does this
    response = await fastapi_client.get("/context", headers={"X-Request-ID": "ctx-1"})
    body = response.json()
    seen = {where: body[where]["request_id"] for where in ("handler", "task", "thread")}
    assert seen == {"handler": "ctx-1", "task": "ctx-1", "thread": "ctx-1"}
    inside = [r for r in logged if r.get("event") == "inside handler"]
    assert inside[0]["request_id"] == "ctx-1"


async def test_context_is_restored_after_the_request(fastapi_client: httpx.AsyncClient) -> None:
    """The request id does not leak into the caller's context after the request."""
    from kansoku.context import get_context

    await fastapi_client.get("/items/1", headers={"X-Request-ID": "leak-check"})
    assert "request_id" not in get_context()


def test_fastapi_app_fixture_routes() -> None:
    """The shared FastAPI app has the routes the tests rely on."""
    paths = {getattr(r, "path", None) for r in fastapi_app().routes}
    assert {"/items/{item_id}", "/boom", "/missing", "/context"} <= paths
