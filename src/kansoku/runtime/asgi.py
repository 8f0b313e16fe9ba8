"""`KansokuMiddleware`: one pure ASGI middleware for request ids, access log, RED metrics and errors.

Per HTTP request: accept a valid incoming request id or make one, bind it to the logging context,
start a span when tracing is on, call the app while watching `send` for the status and sizes, turn
an unhandled exception into a JSON 500 (`{"error": "internal_server_error", "event_id": ...}`) and
re-raise it to the server as Starlette's `ServerErrorMiddleware` does, then in `finally` record the
metrics (by route template) and write one access-log line. It also answers `/metrics`, `/health`,
`/ready` and kansoku's own web app under `route_prefix`. Websocket scopes pass through untouched;
lifespan messages pass through unchanged while the runtime is started and stopped with them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, Final, Protocol

from kansoku._safety import report_internal_error
from kansoku.context import _CONTEXT  # one set/reset per request is much cheaper than context()
from kansoku.logs import UNSTORED
from kansoku.metrics._http import route_template
from kansoku.runtime._exchange import (
    CURRENT,
    Exchange,
    Recorder,
    client_address,
    internal_error,
    new_request_id,
    origin_of,
    valid_request_id,
)
from kansoku.runtime._root import setup
from kansoku.runtime.endpoints import (
    MetricsEndpoint,
    Network,
    ReadyEndpoint,
    health_endpoint,
    send_json,
)
from kansoku.typing import ASGIApp, IdFactory, Message, Receive, RequestInfo, Scope, Send

__all__ = ["KansokuMiddleware", "MiddlewareRuntime", "RouteOf", "new_request_id", "valid_request_id"]

_MARK: Final = "kansoku.middleware"  # in the scope: an outer KansokuMiddleware already does the work
_FASTAPI_OBSERVED: Final = "fastapi.telemetry"

RouteOf = Callable[[Scope, str], str]
"""Reads the route template from the scope after the app ran (scope, the server's root_path)."""


class MiddlewareRuntime(Protocol):
    """What the middleware uses of the runtime (`kansoku.runtime.Runtime` is one)."""

    settings: Any
    registry: Any
    http_metrics: Any
    request_stats: Any
    readiness: Any
    request_tracer: Any

    @property
    def web_app(self) -> ASGIApp | None: ...

    def capture_exception(self, exc: BaseException, *, request: RequestInfo | None = ...,
                          mechanism: str = ..., handled: bool = ..., **context: Any) -> str: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class KansokuMiddleware:
    """Observe every HTTP request of `app`; see the module docstring for what it does.

    `runtime` is the configured kansoku (what `instrument()` passes); without one, the middleware
    sets one up from `settings` (keywords > `KANSOKU_*` environment > kansoku.toml). `route_of`
    reads the route template the app matched (default: Starlette's `scope["route"]`); framework
    integrations pass their own, or name the route with `kansoku.set_route`.
    """

    def __init__(self, app: ASGIApp, runtime: MiddlewareRuntime | None = None, *,
                 new_id: IdFactory = new_request_id, route_of: RouteOf = route_template,
                 **settings: Any) -> None:
        if runtime is None:
            runtime = setup(**settings)
        elif settings:
            raise TypeError(f"settings {sorted(settings)} go to the runtime, not to "
                            "KansokuMiddleware(runtime=...)")
        self.app, self.runtime, self.route_of = app, runtime, route_of
        self._recorder = recorder = Recorder(runtime, new_id=new_id)
        config = runtime.settings
        self._id_header = config.request_id_header.lower().encode("latin-1")
        self._proxies = recorder.proxies
        self._prefix = config.route_prefix
        self._own: dict[str, ASGIApp] = {
            "/health": health_endpoint, "/ready": ReadyEndpoint(runtime.readiness),
            # No bound method of self in there: a dropped middleware must be freed at once, not by
            # the cycle collector, for instrument() to say so (`_report_if_dropped`).
            "/metrics": MetricsEndpoint(runtime.registry, config,
                                        functools.partial(scope_client, proxies=self._proxies),
                                        exemplars=runtime.http_metrics.exemplars),
        }
        self._in_progress = recorder.in_progress
        self.served: Callable[[], object] | None = None  # instrument(): called once, at the first call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Observe one HTTP request (the hot path, kept in one frame); other scopes go to `_other`."""
        served = self.served
        if served is not None:
            self.served = None
            served()
        if scope["type"] != "http" or _MARK in scope:
            await self._other(scope, receive, send)
            return
        scope[_MARK] = True
        recorder = self._recorder
        request = _Request(self, scope, send)
        wanted_id, header = None, self._id_header
        for name, value in scope["headers"]:
            if name == header:
                wanted_id = value
            elif name == b"content-length" and value.isdigit():
                request.request_size = int(value)
            elif name == b"user-agent":
                request.user_agent = value.decode("latin-1")[:256]
        request_id = recorder.request_id(wanted_id.decode("latin-1") if wanted_id else None)
        request.header = (header, request_id.encode())
        token = _CONTEXT.set({**_CONTEXT.get(), "request_id": request_id})
        current = CURRENT.set(request)
        app = self._choose(request)
        self._in_progress.track(request)
        tracer = recorder.tracer
        unstored = None
        if not request.observed:  # kansoku's own routes (observe_exclude): no span, metrics, stored logs
            tracer, unstored = None, UNSTORED.set(True)
        if tracer is not None:
            # A FastAPI app mounted below would open a second server span and three operation
            # spans under kansoku's: this mark is how FastAPI tells its nested apps that an outer
            # layer observes the request (instrument() turns the app's own tracing off).
            scope[_FASTAPI_OBSERVED] = None
            request.handle = _call_safely("middleware.trace-start", tracer.start, scope)
        try:
            await app(scope, receive, request.send)
        except Exception as exc:
            if app is self.app:
                event_id = recorder.capture(request, exc)
            else:  # kansoku's own routes: its failure, never one of the app's error groups
                event_id = recorder.new_id()
                report_internal_error("web", exc)
            if not request.started:
                with contextlib.suppress(Exception):  # the client may be gone; the app's error matters
                    # The server closes the connection on the re-raise (uvicorn does): say so.
                    await send_json(request.send, 500, {"error": "internal_server_error", "event_id": event_id},
                                    headers=[(b"connection", b"close")])
            raise
        except BaseException:
            request.status = request.status or 499  # cancelled before answering: nginx's "client closed"
            raise
        finally:
            try:
                recorder.finish(request, own=app is not self.app)
            finally:
                CURRENT.reset(current)
                _CONTEXT.reset(token)
                if unstored is not None:
                    UNSTORED.reset(unstored)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan starts and stops kansoku; websockets and requests already observed pass through."""
        if scope["type"] != "lifespan" or _MARK in scope:
            await self.app(scope, receive, send)
            return
        scope[_MARK] = True
        await self._lifespan(scope, receive, send)

    def _choose(self, request: _Request) -> ASGIApp:
        """The app for this path: kansoku's own endpoints, its web app under the prefix, or the app."""
        scope, root_path = request.scope, request.root_path
        path = scope["path"]
        if root_path and path.startswith(root_path):
            path = path[len(root_path):]
        request.observed = self._recorder.observed(path)
        if scope["method"] in ("GET", "HEAD") and path in self._own:
            request.route = path
            return self._own[path]
        prefix = self._prefix
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            scope["root_path"] = root_path + prefix  # the web app routes below the prefix
            return self.runtime.web_app or _not_found
        return self.app

    def client(self, scope: Scope) -> str:
        """The client address: the peer, or the X-Forwarded-For hop before the trusted proxies."""
        return scope_client(scope, self._proxies)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass lifespan through, starting the runtime on startup and stopping it after shutdown."""
        startup_seen = False

        async def receive_() -> Message:
            nonlocal startup_seen
            message = await receive()
            if message["type"] == "lifespan.startup":
                startup_seen = True
                await _call_async_safely("middleware.start", self.runtime.start)
            return message

        async def send_(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await _call_async_safely("middleware.stop", self.runtime.stop)
            await send(message)

        try:
            await self.app(scope, receive_, send_)
        except Exception:
            if startup_seen:
                raise
        if not startup_seen:  # the app does not speak lifespan: answer it, so kansoku still runs
            await self._serve_lifespan(receive, send)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await _call_async_safely("middleware.start", self.runtime.start)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _call_async_safely("middleware.stop", self.runtime.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Request(Exchange):
    """One request's state, and the `send` that watches the response."""

    __slots__ = ("client_send", "header", "middleware", "root_path", "scope", "started")

    def __init__(self, middleware: KansokuMiddleware, scope: Scope, send: Send) -> None:
        super().__init__(middleware._recorder, scope["method"], scope["path"])
        self.middleware, self.scope, self.client_send = middleware, scope, send
        self.root_path = scope.get("root_path", "")
        self.started = False
        self.header = (b"", b"")

    def live_route(self) -> str:
        """The route named by the app (`set_route`), else the one read from the scope."""
        return self.route or self.middleware.route_of(self.scope, self.root_path)

    def client(self) -> str:
        """The client's address (the peer, or the hop before the trusted proxies)."""
        return self.middleware.client(self.scope)

    def origin(self) -> str:
        """The scheme and the Host header (or the server's address)."""
        scope = self.scope
        host = next((value for name, value in scope["headers"] if name == b"host"), b"")
        return origin_of(scope.get("scheme", "http"), host.decode("latin-1"), scope.get("server"))

    async def send(self, message: Message) -> None:
        """Note status and body size; put the request id header on the response."""
        kind = message["type"]
        if kind == "http.response.body":
            self.response_size += len(message.get("body", b""))
        elif kind == "http.response.start":
            self.started, self.status = True, message["status"]
            name = self.header[0]
            # A new list (the app's may be shared); one request id header, ours.
            headers = [item for item in message.get("headers", ()) if item[0].lower() != name]
            headers.append(self.header)
            message["headers"] = headers
        await self.client_send(message)


def scope_client(scope: Scope, proxies: tuple[Network, ...]) -> str:
    """The client address of an ASGI request: the peer, or the X-Forwarded-For hop before `proxies`."""
    peer = scope.get("client")
    host = str(peer[0]) if peer else ""
    if not proxies:
        return host
    forwarded = b",".join(v for n, v in scope["headers"] if n == b"x-forwarded-for").decode("latin-1")
    return client_address(host, forwarded, proxies)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 404, {"error": "not_found"})


def _call_safely(where: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        internal_error(where, exc)
        return None


async def _call_async_safely(where: str, func: Any) -> None:
    try:
        await func()
    except Exception as exc:
        internal_error(where, exc)
