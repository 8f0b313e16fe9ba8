"""Websocket and lifespan scopes pass through; the runtime starts and stops with the lifespan."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

with warnings.catch_warnings():
    # Starlette 1.x would rather its TestClient ran on `httpx2`; httpx works, and no websocket
    # client library is installed for a real server, so the in-process client drives websockets.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from kansoku.runtime.asgi import KansokuMiddleware

from .conftest import bare_app


def test_websocket_passes_through_untouched(runtime: Any) -> None:
    """A websocket connection works end to end; its scope and messages are not changed or counted."""
    scopes: list[dict[str, Any]] = []

    async def echo(websocket: WebSocket) -> None:
        scopes.append(dict(websocket.scope))
        await websocket.accept()
        await websocket.send_text("echo:" + await websocket.receive_text())
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    with TestClient(KansokuMiddleware(app, runtime=runtime)) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"
    assert not any(key.startswith("kansoku") for key in scopes[0])
    assert runtime.value("http_requests_total", method="GET", route="/ws", status="101") is None


class Lifespan:
    """Drive the ASGI lifespan protocol by hand, recording what reaches the server."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.answered = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.answered.set()

    async def run(self, app: Any, runtime: Any) -> None:
        task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                       self.receive, self.send))
        await self.inbox.put({"type": "lifespan.startup"})
        await asyncio.wait_for(self.answered.wait(), 5)
        assert runtime.calls == ["start"]
        await self.inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 5)


async def test_lifespan_messages_pass_unchanged_and_drive_the_runtime(runtime: Any) -> None:
    """The app's own startup and shutdown run; kansoku starts before the app and stops after it."""
    order: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        message = await receive()
        order.append(f"app:{message['type']}")
        await send({"type": "lifespan.startup.complete", "extra": 1})
        message = await receive()
        order.append(f"app:{message['type']}")
        await send({"type": "lifespan.shutdown.complete"})

    protocol = Lifespan()
    await protocol.run(KansokuMiddleware(app, runtime=runtime), runtime)
    assert protocol.sent == [{"type": "lifespan.startup.complete", "extra": 1},
                             {"type": "lifespan.shutdown.complete"}]
    assert order == ["app:lifespan.startup", "app:lifespan.shutdown"]
    assert runtime.calls == ["start", "stop"]


async def test_app_without_lifespan_support_still_starts_kansoku(runtime: Any) -> None:
    """A bare app that rejects the lifespan scope: the middleware answers it, so kansoku still runs."""
    protocol = Lifespan()
    await protocol.run(KansokuMiddleware(bare_app, runtime=runtime), runtime)
    assert protocol.sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert runtime.calls == ["start", "stop"]


async def test_failing_app_startup_is_reported_to_the_server(runtime: Any) -> None:
    """An app whose startup fails keeps failing: the message and the exception reach the server."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "db down"})
        raise RuntimeError("db down")

    protocol = Lifespan()
    task = asyncio.create_task(KansokuMiddleware(app, runtime=runtime)(
        {"type": "lifespan", "asgi": {"version": "3.0"}}, protocol.receive, protocol.send))
    await protocol.inbox.put({"type": "lifespan.startup"})
    with pytest.raises(RuntimeError, match="db down"):
        await asyncio.wait_for(task, 5)
    assert protocol.sent == [{"type": "lifespan.startup.failed", "message": "db down"}]


def test_starlette_lifespan_with_testclient(runtime: Any) -> None:
    """A Starlette app's lifespan handler runs through the middleware, and so do kansoku's hooks."""
    import contextlib

    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        events.append("app-start")
        yield {"ready": True}
        events.append("app-stop")

    app = Starlette(lifespan=lifespan)
    with TestClient(KansokuMiddleware(app, runtime=runtime)):
        assert runtime.calls == ["start"]
    assert events == ["app-start", "app-stop"]
    assert runtime.calls == ["start", "stop"]
