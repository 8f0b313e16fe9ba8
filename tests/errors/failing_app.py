"""A small ASGI app for the fault and durability tests: /fail raises, the tracker captures it.

`build(tracker)` serves in-process tests. The module-level `app` is what the durability test runs
under uvicorn: it opens the store of KANSOKU_DATABASE_URL on lifespan startup and closes the
tracker (flushing every accepted event) on lifespan shutdown, which uvicorn runs on SIGTERM.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import time
from typing import Any

import orjson

from kansoku.errors import ErrorTracker
from kansoku.settings import load_settings
from kansoku.store import Store
from kansoku.typing import ErrorEvent, Receive, Scope, Send

_orders = itertools.count(1)


def place_order(order: int) -> None:
    """The application's bug."""
    raise RuntimeError(f"order {order} failed")


async def _respond(send: Send, status: int, data: Any) -> None:
    body = orjson.dumps(data)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build(tracker: ErrorTracker) -> Any:
    """The app, capturing with `tracker`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/ok":
            await _respond(send, 200, {"ok": True})
            return
        try:
            place_order(next(_orders))
        except RuntimeError as exc:
            request = {"method": scope["method"], "route": "/fail", "url": scope["path"]}
            await _respond(send, 500, {"error": "internal", "event_id": tracker.capture(
                exc, request=request, mechanism="middleware", handled=False)})

    return app


class _Served:
    """uvicorn's app: the store and tracker are made in the worker, on lifespan startup."""

    def __init__(self) -> None:
        self.inner: Any = None
        self.tracker: ErrorTracker | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.inner(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                settings = load_settings()
                store = Store.open(settings)
                self.tracker = ErrorTracker(settings, store.engine)
                slow = float(os.environ.get("FAILING_APP_SLOW_MS", "0")) / 1000
                if slow:  # a slow store: accepted events pile up in the worker
                    self.tracker.add_processor(functools.partial(_sleep, seconds=slow))
                self.tracker.start()
                self.inner = build(self.tracker)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                assert self.tracker is not None
                stats = self.tracker.stats()
                pending = stats["queued"] + stats["waiting"]
                print(f"pending at shutdown: {pending}", file=sys.stderr, flush=True)
                ok = self.tracker.close(timeout=60)
                print(f"closed: {ok} {self.tracker.stats()}", file=sys.stderr, flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _sleep(event: ErrorEvent, seconds: float) -> ErrorEvent:
    time.sleep(seconds)
    return event


app = _Served()
