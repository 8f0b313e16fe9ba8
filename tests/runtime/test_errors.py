"""Unhandled exceptions: captured, logged with the event id, answered with a JSON 500, re-raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kansoku.runtime.asgi import KansokuMiddleware
from kansoku.typing import Receive, Scope, Send

from .conftest import bare_app, fastapi_app, starlette_app


async def test_exception_becomes_json_500_with_event_id(fastapi_client: httpx.AsyncClient,
                                                       runtime: Any) -> None:
    """The client gets {"error": "internal_server_error", "event_id": ...} and the request id header."""
    response = await fastapi_client.get("/boom", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_server_error", "event_id": "event-1"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "err-1"
    assert runtime.value("http_requests_total", method="GET", route="/boom", status="500") == 1.0


async def test_exception_is_captured_with_the_request(fastapi_client: httpx.AsyncClient,
                                                     runtime: Any) -> None:
    """The runtime's error tracker receives the exception and what the request was."""
    await fastapi_client.get("/boom", headers={"User-Agent": "ua/1"})
    (captured,) = runtime.captured
    assert isinstance(captured["exc"], ValueError)
    assert captured["mechanism"] == "middleware"
    assert captured["handled"] is False
    assert captured["request"] == {"method": "GET", "route": "/boom", "url": "/boom", "client": "127.0.0.1",
                                   "user_agent": "ua/1", "origin": "http://testserver"}


async def test_a_hostile_host_header_is_not_the_origin(fastapi_client: httpx.AsyncClient, runtime: Any) -> None:
    """A Host header that is not a host[:port] is replaced by the server's address."""
    await fastapi_client.get("/boom", headers={"Host": "evil.example/<script>"})
    (captured,) = runtime.captured
    assert captured["request"]["origin"] == "http://testserver"  # the server's own name


async def test_error_and_access_lines_carry_event_and_request_ids(fastapi_client: httpx.AsyncClient,
                                                                 logged: list[Any]) -> None:
    """One ERROR line with the exception, and the access line, both name the event and request ids."""
    await fastapi_client.get("/boom", headers={"X-Request-ID": "err-2"})
    errors = [r for r in logged if r["level"] == "error"]
    access = [r for r in logged if r.get("logger") == "kansoku.access"]
    assert len(errors) == 1 and len(access) == 1
    assert errors[0]["event"] == "unhandled exception"
    assert errors[0]["exception"]["type"] == "ValueError"
    assert errors[0]["event_id"] == access[0]["event_id"] == "event-1"
    assert errors[0]["request_id"] == access[0]["request_id"] == "err-2"
    assert access[0]["status"] == 500


async def test_exception_is_reraised_to_the_server(runtime: Any, client_for: Any) -> None:
    """After answering, the exception goes on to the server (as Starlette's ServerErrorMiddleware does)."""
    app = fastapi_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    async with client_for(app, raise_app_exceptions=True) as client:
        with pytest.raises(ValueError, match="kaboom"):
            await client.get("/boom")


async def test_exception_after_response_start_is_only_reraised(runtime: Any, client_for: Any) -> None:
    """Once the response started, nothing more is sent; the exception is captured and re-raised."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("mid-stream")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/s", "root_path": "", "headers": [], "client": None}
    with pytest.raises(RuntimeError, match="mid-stream"):
        await KansokuMiddleware(app, runtime=runtime)(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert len(runtime.captured) == 1
    assert runtime.value("http_requests_total", method="GET", route="<unmatched>", status="200") == 1.0


async def test_http_exceptions_are_not_errors(fastapi_client: httpx.AsyncClient, runtime: Any) -> None:
    """An HTTPException is the app's answer, not a crash: no capture, its own status."""
    response = await fastapi_client.get("/missing")
    assert response.status_code == 404
    assert response.json() == {"detail": "no such thing"}
    assert runtime.captured == []


def _failing_starlette_app() -> Any:
    from starlette.routing import Route

    async def fail(request: Any) -> Any:
        raise KeyError("gone")

    app = starlette_app()
    app.router.routes.append(Route("/fail", fail))
    return app


async def test_starlette_app_exception_is_json_500(runtime: Any, client_for: Any) -> None:
    """A plain Starlette app with the middleware added (as instrument() does) gets the JSON 500."""
    app = _failing_starlette_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    async with client_for(app) as client:
        response = await client.get("/fail")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_server_error", "event_id": "event-1"}


async def test_wrapping_outside_starlette_keeps_its_500_and_captures(runtime: Any, client_for: Any) -> None:
    """Wrapped outside Starlette, Starlette's own 500 was sent first: it stands; the error is captured."""
    async with client_for(KansokuMiddleware(_failing_starlette_app(), runtime=runtime)) as client:
        response = await client.get("/fail")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert isinstance(runtime.captured[0]["exc"], KeyError)
    assert runtime.value("http_requests_total", method="GET", route="/fail", status="500") == 1.0


async def test_failing_capture_still_answers_500(make_runtime: Any, client_for: Any,
                                                 logged: list[Any]) -> None:
    """If the error tracker itself fails (outside strict mode) the client still gets a 500 with an id."""
    from kansoku import _safety

    runtime = make_runtime()

    def broken(exc: BaseException, **kwargs: Any) -> str:
        raise OSError("store down")

    runtime.capture_exception = broken
    app = fastapi_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    _safety.set_strict(False)
    try:
        async with client_for(app) as client:
            response = await client.get("/boom")
    finally:
        _safety.set_strict(True)
    assert response.status_code == 500
    assert len(response.json()["event_id"]) == 32
    assert _safety.internal_error_count("middleware.capture") >= 1


async def test_kansoku_own_route_failures_are_not_stored_as_groups(
    runtime: Any, client_for: Callable[..., httpx.AsyncClient]
) -> None:
    """A failure inside kansoku's web app answers the JSON 500 and counts as an internal error, but
    is never captured as one of the app's error groups (nor as a 5xx event)."""
    from kansoku._safety import internal_error_count

    async def broken_web_app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("the dashboard's query failed")

    runtime.web_app = broken_web_app
    before = internal_error_count("web")
    async with client_for(KansokuMiddleware(bare_app, runtime=runtime)) as client:
        response = await client.get("/kansoku/api/errors")
    assert response.status_code == 500 and response.json()["error"] == "internal_server_error"
    assert runtime.captured == []
    assert internal_error_count("web") == before + 1
