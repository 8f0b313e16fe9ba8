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
import re
import time
from random import getrandbits as _getrandbits
from typing import Any, Final, Protocol

from kansoku._safety import suppress_internal_errors
from kansoku.context import _CONTEXT  # one set/reset per request is much cheaper than context()
from kansoku.logs import get_logger
from kansoku.metrics._http import UNMATCHED, route_template
from kansoku.runtime.endpoints import (
    MetricsEndpoint,
    ReadyEndpoint,
    health_endpoint,
    in_networks,
    parse_networks,
    send_json,
)
from kansoku.typing import ASGIApp, IdFactory, Message, Receive, RequestInfo, Scope, Send

__all__ = ["KansokuMiddleware", "MiddlewareRuntime", "new_request_id", "valid_request_id"]

_MARK: Final = "kansoku.middleware"  # in the scope: an outer KansokuMiddleware already does the work
_VALID_ID: Final = re.compile(rb"[A-Za-z0-9._:@/+=\-]{1,128}")
_FASTAPI_OBSERVED: Final = "fastapi.telemetry"
_perf_counter = time.perf_counter
# The access line's fields that come from the client and are scanned for secrets; the others are
# kansoku's own: numbers, the route template, the client address (the peer or a validated IP).
_FROM_CLIENT: Final = ("method", "path", "user_agent")


class MiddlewareRuntime(Protocol):
    """What the middleware uses of the runtime (`kansoku.runtime.Runtime` is one)."""

    settings: Any
    registry: Any
    http_metrics: Any
    request_stats: Any
    readiness: Any
    request_tracer: Any
    web_app: ASGIApp | None

    def capture_exception(self, exc: BaseException, *, request: RequestInfo | None = ...,
                          mechanism: str = ..., handled: bool = ...) -> str: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def new_request_id() -> str:
    """A new request id: 32 random hex digits.

    A correlation id, not a secret: the fast generator of `random` does (a third of the cost of
    `os.urandom`), and it reseeds itself in forked workers.
    """
    return f"{_getrandbits(128):032x}"


def valid_request_id(value: bytes) -> bool:
    """Whether an incoming id may be kept: 1-128 characters of A-Z a-z 0-9 . _ : @ / + = -."""
    return _VALID_ID.fullmatch(value) is not None


class KansokuMiddleware:
    """Observe every HTTP request of `app`; see the module docstring for what it does.

    `runtime` is the configured kansoku (what `instrument()` passes); without one, the middleware
    sets one up from `settings` (keywords > `KANSOKU_*` environment > kansoku.toml).
    """

    def __init__(self, app: ASGIApp, runtime: MiddlewareRuntime | None = None, *,
                 new_id: IdFactory = new_request_id, **settings: Any) -> None:
        if runtime is None:
            from kansoku.runtime import setup

            runtime = setup(**settings)
        elif settings:
            raise TypeError(f"settings {sorted(settings)} go to the runtime, not to "
                            "KansokuMiddleware(runtime=...)")
        self.app, self.runtime, self._new_id = app, runtime, new_id
        config = runtime.settings
        self._id_header = config.request_id_header.lower().encode("latin-1")
        self._proxies = parse_networks(config.trusted_proxies)
        # Exclusions are exact paths, or prefixes when they end in "*" ("/static/*"); None: no log.
        excluded = config.access_log_exclude
        self._quiet = frozenset(p for p in excluded if p[-1:] != "*") if config.access_log else None
        self._quiet_prefixes = tuple(p[:-1] for p in excluded if p[-1:] == "*")
        self._prefix = config.route_prefix
        self._own: dict[str, ASGIApp] = {
            "/health": health_endpoint, "/ready": ReadyEndpoint(runtime.readiness),
            "/metrics": MetricsEndpoint(runtime.registry, config, self.client),
        }
        self._access, self._log = get_logger("kansoku.access"), get_logger("kansoku.middleware")
        self._metrics, self._in_progress = runtime.http_metrics, runtime.http_metrics.in_progress
        # The per-minute statistics, unless the metrics count them already (the runtime wires that).
        stats = runtime.request_stats
        self._stats = None if stats is None or getattr(self._metrics, "stats", None) is stats else stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Observe one HTTP request (the hot path, kept in one frame); other scopes go to `_other`."""
        if scope["type"] != "http" or _MARK in scope:
            await self._other(scope, receive, send)
            return
        scope[_MARK] = True
        request = _Request(scope, send)
        wanted_id, header = None, self._id_header
        for name, value in scope["headers"]:
            if name == header:
                wanted_id = value
            elif name == b"content-length" and value.isdigit():
                request.request_size = int(value)
            elif name == b"user-agent":
                request.user_agent = value.decode("latin-1")[:256]
        request_id = wanted_id.decode() if wanted_id and _VALID_ID.fullmatch(wanted_id) else self._new_id()
        request.header = (header, request_id.encode())
        token = _CONTEXT.set({**_CONTEXT.get(), "request_id": request_id})
        app = self._choose(request)
        self._in_progress.track(scope, request.root_path, request.route)
        tracer = self.runtime.request_tracer
        if tracer is not None:
            # A FastAPI app mounted below would open a second server span and three operation
            # spans under kansoku's: this mark is how FastAPI tells its nested apps that an outer
            # layer observes the request (instrument() turns the app's own tracing off).
            scope[_FASTAPI_OBSERVED] = None
            request.handle = _call_safely("middleware.trace-start", tracer.start, scope)
        try:
            await app(scope, receive, request.send)
        except Exception as exc:
            request.event_id = self._capture(exc, request)
            if not request.started:
                with contextlib.suppress(Exception):  # the client may be gone; the app's error matters
                    # The server closes the connection on the re-raise (uvicorn does): say so.
                    await send_json(request.send, 500, {"error": "internal_server_error",
                                                        "event_id": request.event_id},
                                    headers=[(b"connection", b"close")])
            request.error = exc
            raise
        except BaseException:
            request.status = request.status or 499  # cancelled before answering: nginx's "client closed"
            raise
        finally:
            try:
                self._finish(request, tracer)
            finally:
                _CONTEXT.reset(token)

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
        if scope["method"] in ("GET", "HEAD") and path in self._own:
            request.route = path
            return self._own[path]
        prefix = self._prefix
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            scope["root_path"] = root_path + prefix  # the web app routes below the prefix
            return self.runtime.web_app or _not_found
        return self.app

    def _finish(self, request: _Request, tracer: Any) -> None:
        """Metrics, request statistics, the span and the access-log line of one request."""
        try:
            scope, stats = request.scope, self._stats
            duration = _perf_counter() - request.started_at
            self._in_progress.untrack(scope)
            route = request.route or route_template(scope, request.root_path)
            status = request.status or 500  # the server answers 500 when an app sends nothing
            handle = request.handle
            trace_id = None if handle is None else handle.trace_id
            self._metrics.observe(scope["method"], route, status, duration, request.request_size,
                                  request.response_size, trace_id)
            if stats is not None:
                stats.record(status, duration)
            path = scope["path"]
            quiet = self._quiet
            if quiet is not None and path not in quiet and not path.startswith(self._quiet_prefixes):
                # request_id comes from the bound context, like on every other line of the request.
                fields = {"method": scope["method"], "route": route, "path": path, "status": status,
                          "duration_ms": round(duration * 1e6) / 1000, "response_size": request.response_size,
                          "client": self.client(scope), "user_agent": request.user_agent}
                if request.event_id:
                    fields["event_id"] = request.event_id
                if handle is not None:
                    fields["trace_id"], fields["span_id"] = trace_id, handle.span_id
                # Not a breadcrumb nor an error, and its ids are in: the log hooks have nothing to do.
                self._access.fields("info", "request", fields, scan=_FROM_CLIENT, hooks=False)
            if handle is not None:
                tracer.finish(handle, status, None if route == UNMATCHED else route, request.error)
        except Exception as exc:
            _internal_error("middleware.record", exc)

    def _capture(self, exc: Exception, request: _Request) -> str:
        """Record the app's unhandled exception; returns the event id for the 500 body."""
        scope = request.scope
        route = request.route or route_template(scope, request.root_path)
        info: RequestInfo = {"method": scope["method"], "route": route, "url": scope["path"],
                             "client": self.client(scope), "user_agent": request.user_agent}
        event_id = _call_safely("middleware.capture", self.runtime.capture_exception, exc, request=info,
                                mechanism="middleware", handled=False) or self._new_id()
        self._log.error("unhandled exception", exc_info=exc, event_id=event_id, method=scope["method"],
                        route=route, path=scope["path"])
        return str(event_id)

    def client(self, scope: Scope) -> str:
        """The client address: the peer, or the X-Forwarded-For hop before the trusted proxies."""
        peer = scope.get("client")
        host = str(peer[0]) if peer else ""
        if not self._proxies or not in_networks(host, self._proxies):
            return host
        forwarded = b",".join(v for n, v in scope["headers"] if n == b"x-forwarded-for").decode("latin-1")
        for hop in reversed([hop.strip() for hop in forwarded.split(",") if hop.strip()]):
            if not in_networks(hop, self._proxies):
                return hop if in_networks(hop, _ANY) else host  # garbage is not an address
            host = hop
        return host

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


class _Request:
    """One request's state, and the `send` that watches the response."""

    __slots__ = ("client_send", "error", "event_id", "handle", "header", "request_size",
                 "response_size", "root_path", "route", "scope", "started", "started_at", "status",
                 "user_agent")

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope, self.client_send, self.root_path = scope, send, scope.get("root_path", "")
        self.started_at = _perf_counter()
        self.status = self.request_size = self.response_size = 0
        self.started = False
        self.route: str | None = None
        self.user_agent = ""
        self.header = (b"", b"")
        self.handle: Any = None
        self.error: BaseException | None = None
        self.event_id: str | None = None

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


_ANY: Final = parse_networks(["0.0.0.0/0", "::/0"])


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 404, {"error": "not_found"})


def _internal_error(where: str, exc: Exception) -> None:
    """Report kansoku's own failure (raised in strict mode, so tests see it)."""
    with suppress_internal_errors(where):
        raise exc


def _call_safely(where: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        _internal_error(where, exc)
        return None


async def _call_async_safely(where: str, func: Any) -> None:
    try:
        await func()
    except Exception as exc:
        _internal_error(where, exc)
