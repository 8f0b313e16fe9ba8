"""Fixtures for the middleware tests: a runtime made of the real metrics parts, apps, clients, logs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from kansoku import logs
from kansoku.context import get_context
from kansoku.runtime.asgi import KansokuMiddleware
from kansoku.settings import load_settings
from kansoku.testing import MetricsRuntime, capture_logs
from kansoku.typing import Receive, Scope, Send


class LightRuntime(MetricsRuntime):
    """The runtime attributes the middleware reads, built from the real metrics parts.

    No store, tracer or dashboard: the error tracker is replaced by a list of what was captured,
    so tests can assert what the middleware hands over.
    """

    def __init__(self, **overrides: Any) -> None:
        super().__init__(load_settings(**overrides))
        self.captured: list[dict[str, Any]] = []
        self.calls: list[str] = []

    def capture_exception(self, exc: BaseException, **kwargs: Any) -> str:
        self.captured.append({"exc": exc, **kwargs})
        return f"event-{len(self.captured)}"

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    def value(self, name: str, **labels: str) -> float | None:
        """One sample of the registry (None when absent)."""
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def runtime() -> LightRuntime:
    """A fresh light runtime with default settings."""
    return LightRuntime()


@pytest.fixture
def make_runtime() -> Callable[..., LightRuntime]:
    """Build a light runtime with settings overrides."""
    return LightRuntime


@pytest.fixture(autouse=True)
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every log record written during the test (after redaction), instead of output."""
    with capture_logs() as records:
        yield records


def fastapi_app() -> FastAPI:
    """A FastAPI app with a templated route, a failing one, an HTTPException and a context probe."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id}

    @app.post("/items")
    async def create_item(request: Request) -> dict[str, Any]:
        return {"size": len(await request.body())}

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("kaboom")

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404, detail="no such thing")

    @app.get("/context")
    async def context_probe() -> dict[str, Any]:
        in_task = await asyncio.create_task(_context_in_task())
        in_thread: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: in_thread.update(get_context()))
        thread.start()
        thread.join()
        logs.get_logger("app").info("inside handler")
        return {"handler": dict(get_context()), "task": in_task, "thread": in_thread}

    return app


async def _context_in_task() -> dict[str, Any]:
    return dict(get_context())


def starlette_app() -> Starlette:
    """A plain Starlette app with a templated route and a mounted sub-app."""

    async def user(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.path_params["user_id"]})

    async def order(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["order_id"])

    return Starlette(routes=[
        Route("/users/{user_id}", user),
        Mount("/shop", routes=[Route("/orders/{order_id}", order)]),
    ])


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app: answers every HTTP path with 'hello'."""
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
def client_for() -> Callable[..., httpx.AsyncClient]:
    """An httpx client calling an ASGI app in-process; the server's view of exceptions is kept out."""

    def make(app: Any, *, raise_app_exceptions: bool = False, client: tuple[str, int] = ("127.0.0.1", 5000)
             ) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app, raise_app_exceptions=raise_app_exceptions, client=client)
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    return make


@pytest.fixture
async def fastapi_client(runtime: LightRuntime, client_for: Callable[..., httpx.AsyncClient]
                         ) -> AsyncIterator[httpx.AsyncClient]:
    """The FastAPI app behind KansokuMiddleware (added as `instrument()` adds it)."""
    app = fastapi_app()
    app.add_middleware(KansokuMiddleware, runtime=runtime)
    async with client_for(app) as client:
        yield client
