"""`KansokuWSGIMiddleware`: the WSGI twin of `KansokuMiddleware`, for Flask, Django and any WSGI app.

The same pillars, through the same per-request code (`kansoku.runtime._exchange`): a valid
incoming request id or a new one (echoed back), the request's context bound, the server span
(W3C `traceparent` continued), RED metrics by route template, one access-log line, the app's
unhandled exception captured and answered with the JSON 500, and `/metrics`, `/health`, `/ready`
and the dashboard answered by kansoku itself.

What WSGI changes:
- The body is an iterable that the server consumes after the app returned. The response is
  recorded (metrics, access line) and the span ends when the server closes the body, so a
  streamed body is timed to its end; the app's `close()` is always called. Each chunk is produced
  with the request's context bound, so a streaming generator logs with the request id.
- A WSGI server cannot be handed an exception and a response both: the JSON 500 is the response,
  and the exception, already recorded, is written to kansoku's log as "unhandled exception" (what
  uvicorn or gunicorn would print). An exception while the body streams cannot change the status:
  it is recorded and re-raised to the server, which drops the connection.
- There is no lifespan: kansoku starts its background work (alert delivery, periodic flushes) in
  each process at its first request, on one event loop thread, and stops it at exit. The
  dashboard is a Starlette (ASGI) app: a2wsgi's `ASGIMiddleware` serves it on that same loop, so
  the dashboard's own async code runs as it does under uvicorn, with no second implementation.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Final

import orjson

from kansoku.context import _CONTEXT
from kansoku.logs import UNSTORED
from kansoku.metrics._http import UNMATCHED
from kansoku.runtime._exchange import (
    CURRENT,
    Exchange,
    Recorder,
    client_address,
    internal_error,
    new_request_id,
    origin_of,
)
from kansoku.runtime._root import setup
from kansoku.runtime.endpoints import MetricsEndpoint, ready_report
from kansoku.typing import IdFactory

__all__ = ["KansokuWSGIMiddleware", "StartResponse", "WSGIApp"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_MARK: Final = "kansoku.middleware"  # in the environ: an outer middleware already does the work
_JSON: Final = ("Content-Type", "application/json")
_REASONS: Final = {200: "200 OK", 401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Not Found",
                   500: "500 Internal Server Error", 503: "503 Service Unavailable"}


class KansokuWSGIMiddleware:
    """Observe every request of the WSGI app `app`; see the module docstring for what it does.

    `runtime` is the configured kansoku (what `instrument()` passes); without one, the middleware
    sets one up from `settings`, like `KansokuMiddleware`. `route_of` reads the route template
    from the environ (None: not known), when the app starts its response or when asked before
    (Flask's integration passes one); or the app names it with `kansoku.set_route`.
    """

    def __init__(self, app: WSGIApp, runtime: Any = None, *, new_id: IdFactory = new_request_id,
                 route_of: Callable[[Environ], str | None] | None = None, **settings: Any) -> None:
        if runtime is None:
            runtime = setup(**settings)
        elif settings:
            raise TypeError(f"settings {sorted(settings)} go to the runtime, not to "
                            "KansokuWSGIMiddleware(runtime=...)")
        self.app, self.runtime, self.route_of = app, runtime, route_of
        self._recorder = recorder = Recorder(runtime, new_id=new_id)
        config = runtime.settings
        self._id_name = config.request_id_header
        self._id_key = "HTTP_" + config.request_id_header.upper().replace("-", "_")
        self._prefix = config.route_prefix
        self._metrics = MetricsEndpoint(runtime.registry, config, lambda scope: "",
                                        exemplars=runtime.http_metrics.exemplars)
        # Names, not bound methods: a dropped middleware must be freed at once (no cycle through
        # self), for instrument() to say so (`_report_if_dropped`).
        self._own = {"/health": "_health", "/ready": "_ready", "/metrics": "_metrics_app"}
        self._proxies = recorder.proxies
        self._in_progress = recorder.in_progress
        self._background: _Background | None = None
        self.served: Callable[[], object] | None = None  # instrument(): called once, at the first call

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Observe one request; the body is recorded when the server closes it."""
        served = self.served
        if served is not None:
            self.served = None
            served()
        if _MARK in environ:
            return self.app(environ, start_response)
        environ[_MARK] = True
        background = self._background
        if background is None or background.pid != os.getpid():
            background = self._start_background()
        recorder = self._recorder
        exchange = _WSGIExchange(self, environ, start_response)
        size = environ.get("CONTENT_LENGTH")
        if size and size.isdigit():
            exchange.request_size = int(size)
        agent = environ.get("HTTP_USER_AGENT")
        if agent:
            exchange.user_agent = agent[:256]
        exchange.request_id = request_id = recorder.request_id(environ.get(self._id_key))
        exchange.context = context = {**_CONTEXT.get(), "request_id": request_id}
        token, current = _CONTEXT.set(context), CURRENT.set(exchange)
        app = self._choose(exchange, environ, background)
        self._in_progress.track(exchange)
        tracer = recorder.tracer if exchange.observed else None  # observe_exclude: no span, metrics, logs
        unstored = None if exchange.observed else UNSTORED.set(True)
        if tracer is not None:
            exchange.handle = _call_safely("middleware.trace-start", tracer.start_wsgi, environ)
        try:
            body = app(environ, exchange.start_response)
        except Exception as exc:
            return exchange.fail(exc, sys.exc_info())
        except BaseException:
            exchange.status = exchange.status or 499
            exchange.close()
            raise
        finally:
            if tracer is not None:
                tracer.leave(exchange.handle)
            CURRENT.reset(current)
            _CONTEXT.reset(token)
            if unstored is not None:
                UNSTORED.reset(unstored)
        return exchange.body(body, app is not self.app)

    def client(self, environ: Environ) -> str:
        """The client address: the peer, or the X-Forwarded-For hop before the trusted proxies."""
        host = str(environ.get("REMOTE_ADDR") or "")
        if not self._proxies:
            return host
        return client_address(host, str(environ.get("HTTP_X_FORWARDED_FOR", "")), self._proxies)

    def close(self, timeout: float = 10.0) -> None:
        """Stop this process's background work (runs at exit by itself; tests call it)."""
        background, self._background = self._background, None
        if background is not None and background.pid == os.getpid():
            background.stop(timeout)

    def _choose(self, exchange: _WSGIExchange, environ: Environ, background: _Background) -> WSGIApp:
        """The app for this path: kansoku's endpoints, its web app under the prefix, or the app."""
        path = exchange.path
        exchange.observed = self._recorder.observed(path)
        if exchange.method in ("GET", "HEAD") and path in self._own:
            exchange.route = path
            app: WSGIApp = getattr(self, self._own[path])
            return app
        prefix = self._prefix
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            # The web app routes below the prefix, as when mounted under an ASGI server.
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix):]
            environ.setdefault("REMOTE_PORT", "0")  # a2wsgi passes the client on only with a port
            return background.web_app or _not_found
        return self.app

    def _start_background(self) -> _Background:
        """This process's background loop: the runtime started on it, the dashboard served from it."""
        with _START_LOCK:
            background = self._background
            if background is None or background.pid != os.getpid():
                background = self._background = _Background(self.runtime)
                atexit.register(self.close)
        return background

    @staticmethod
    def _health(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Liveness: the process answers."""
        return _json(environ, start_response, 200, {"status": "ok"})

    def _ready(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Readiness: the checks run in a thread (they may do I/O), with a time limit."""
        results: dict[str, str | None]
        future = _CHECKS.submit(self.runtime.readiness.results)
        try:
            results = future.result(timeout=5.0)
        except concurrent.futures.TimeoutError:
            results = {"checks": "did not finish within 5s"}
        status, body = ready_report(results, self.runtime.readiness.informational)
        return _json(environ, start_response, status, body)

    def _metrics_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """The Prometheus exposition, behind the same token and allowlist as under ASGI."""
        authorization = str(environ.get("HTTP_AUTHORIZATION", "")).encode("latin-1")
        denied = self._metrics.denied(self.client(environ), authorization)
        if denied is not None:
            status, error, extra = denied
            return _json(environ, start_response, status, {"error": error},
                         [(name.decode(), value.decode()) for name, value in extra])
        body, headers = self._metrics.render(str(environ.get("HTTP_ACCEPT", "")),
                                             str(environ.get("HTTP_ACCEPT_ENCODING", "")))
        wsgi_headers = [(name.decode(), value.decode()) for name, value in headers]
        return _respond(environ, start_response, 200, body, wsgi_headers)


class _WSGIExchange(Exchange):
    """One WSGI request: the `start_response` that notes the status, and the body's end."""

    __slots__ = ("context", "done", "environ", "headers", "middleware", "own", "request_id", "server_start",
                 "write_")

    def __init__(self, middleware: KansokuWSGIMiddleware, environ: Environ, start_response: StartResponse) -> None:
        super().__init__(middleware._recorder, environ["REQUEST_METHOD"],
                         environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        self.middleware, self.environ, self.server_start = middleware, environ, start_response
        self.context: dict[str, Any] = {}
        self.request_id = ""
        self.own = self.done = False
        self.headers: list[tuple[str, str]] = []

    def live_route(self) -> str:
        """The route named by the app (`set_route`), else the one read from the environ."""
        route = self.route
        if route is None:
            route_of = self.middleware.route_of
            route = None if route_of is None else route_of(self.environ)
        return route or UNMATCHED

    def client(self) -> str:
        """The client's address (the peer, or the hop before the trusted proxies)."""
        return self.middleware.client(self.environ)

    def origin(self) -> str:
        """The scheme and the Host header (or SERVER_NAME and SERVER_PORT)."""
        environ = self.environ
        port = str(environ.get("SERVER_PORT", ""))
        server = (str(environ["SERVER_NAME"]), int(port)) if environ.get("SERVER_NAME") and port.isdigit() else None
        return origin_of(str(environ.get("wsgi.url_scheme", "http")), str(environ.get("HTTP_HOST", "")), server)

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
                       ) -> Callable[[bytes], object]:
        """Note the status and the route; put the request id header on the response."""
        if self.route is None and self.middleware.route_of is not None:
            self.route = self.middleware.route_of(self.environ)  # the app still holds its request now
        code = status[:3]
        self.status = int(code) if code.isdigit() else 0
        name = self.middleware._id_name
        lowered = name.lower()
        headers = [item for item in headers if item[0].lower() != lowered]
        headers.append((name, self.request_id))
        self.headers = headers
        self.write_ = self.server_start(status, headers, exc_info) if exc_info else self.server_start(status, headers)
        return self.write

    def write(self, data: bytes) -> object:
        """The legacy `write()` callable, counted."""
        self.response_size += len(data)
        return self.write_(data)

    def body(self, body: Iterable[bytes], own: bool) -> Iterable[bytes]:
        """The app's body, recorded when the server closes it."""
        self.own = own
        file_wrapper = self.environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
            # The server sends a file wrapper with sendfile(): keep it, and finish on its close().
            return _close_hook(body, self)  # type: ignore[no-any-return]
        return _Body(body, self)

    def fail(self, exc: Exception, exc_info: ExcInfo) -> Iterable[bytes]:
        """The app raised before returning a body: record it and answer the JSON 500."""
        event_id = self.recorder.capture(self, exc)
        payload = orjson.dumps({"error": "internal_server_error", "event_id": event_id})
        try:
            self.start_response(_REASONS[500], [_JSON, ("Content-Length", str(len(payload)))], exc_info)
        except BaseException:
            self.close()  # the response had started: the server can only drop the connection
            raise
        self.response_size = len(payload)
        self.close()
        return [payload]

    def close(self) -> None:
        """The response is done: record it (once)."""
        if not self.done:
            self.done = True
            token = _CONTEXT.set(self.context)  # the access line carries the request's ids
            try:
                self.recorder.finish(self, own=self.own)
            finally:
                _CONTEXT.reset(token)


class _Body:
    """The app's body as the server sees it: counted, produced in the request's context, closed."""

    __slots__ = ("body", "exchange")

    def __init__(self, body: Iterable[bytes], exchange: _WSGIExchange) -> None:
        self.body, self.exchange = body, exchange

    def __iter__(self) -> Iterator[bytes]:
        exchange = self.exchange
        chunks = iter(self.body)
        while True:
            token = _CONTEXT.set(exchange.context)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:
                if not exchange.done:
                    exchange.recorder.capture(exchange, exc)
                raise
            finally:
                _CONTEXT.reset(token)
            exchange.response_size += len(chunk)
            yield chunk

    def close(self) -> None:
        """Close the app's body (PEP 3333), then record the response."""
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.exchange.close()


def _close_hook(body: Any, exchange: _WSGIExchange) -> Any:
    """Record the response when the server closes the file wrapper it sends itself."""
    original = getattr(body, "close", None)
    size = next((value for name, value in exchange.headers if name.lower() == "content-length"), None)
    if size is not None and size.isdigit():
        exchange.response_size = int(size)

    def close() -> None:
        try:
            if original is not None:
                original()
        finally:
            exchange.close()

    body.close = close
    return body


class _Background:
    """One event loop thread per process: the runtime's background work and the dashboard."""

    def __init__(self, runtime: Any) -> None:
        self.pid = os.getpid()
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kansoku-loop", daemon=True)
        self._thread.start()
        self._web_app: WSGIApp | None = None
        try:
            asyncio.run_coroutine_threadsafe(runtime.start(), self.loop).result(timeout=10.0)
        except Exception as exc:
            internal_error("wsgi.start", exc)

    @property
    def web_app(self) -> WSGIApp | None:
        """The runtime's web app served from this loop, made on the first request for it."""
        if self._web_app is None:
            web_app = self.runtime.web_app
            if web_app is not None:
                from a2wsgi import ASGIMiddleware

                self._web_app = ASGIMiddleware(web_app, loop=self.loop)  # type: ignore[assignment]
        return self._web_app

    def stop(self, timeout: float) -> None:
        """Stop the runtime (flushing what it holds) and the loop."""
        try:
            asyncio.run_coroutine_threadsafe(self.runtime.stop(), self.loop).result(timeout=timeout)
        except Exception as exc:
            internal_error("wsgi.stop", exc)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5.0)
            if not self._thread.is_alive():
                self.loop.close()


_START_LOCK = threading.Lock()
_CHECKS = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kansoku-ready")


def _not_found(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return _json(environ, start_response, 404, {"error": "not_found"})


def _json(environ: Environ, start_response: StartResponse, status: int, data: Any,
          headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    return _respond(environ, start_response, status, orjson.dumps(data), [_JSON, *(headers or ())])


def _respond(environ: Environ, start_response: StartResponse, status: int, body: bytes,
             headers: list[tuple[str, str]]) -> Iterable[bytes]:
    """A complete response with a content-length (no body for HEAD)."""
    headers.append(("Content-Length", str(len(body))))
    start_response(_REASONS.get(status, f"{status} Unknown"), headers)
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


def _call_safely(where: str, func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except Exception as exc:
        internal_error(where, exc)
        return None
