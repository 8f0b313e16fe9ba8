"""The server span of each request, for kansoku's middleware: `RequestTracer.start` and `finish`.

The span follows the OpenTelemetry HTTP server conventions. Its attributes are made only when it
is handed on (`LightSpan.readable()`): a span the local store does not keep costs its ids, a
sampling decision and a context switch, and nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from kansoku.redact import Redactor, redactor_for
from kansoku.settings import Settings
from kansoku.tracing._spans import LightSpan, LightTracer, current_context, record_error, restore, use_span
from kansoku.typing import Scope

__all__ = ["RequestTracer", "request_attributes", "wsgi_request_attributes"]

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
                             "QUERY"})
_ERROR: Final = Status(StatusCode.ERROR)


class RequestTracer:
    """Starts and finishes the server span of each request (used by kansoku's middleware).

    `start(scope)` continues the context of the request's headers (W3C `traceparent` and
    `baggage` by default; whatever `propagators` / OTEL_PROPAGATORS names, b3 included), asks the
    provider's sampler, and makes the span current; `finish(...)` adds the route, the status and
    the error, ends the span and restores the context. Both run in the request's task.
    """

    def __init__(
        self, provider: TracerProvider, settings: Settings | None = None, *, redactor: Redactor | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        if redactor is None and settings is not None:
            redactor = redactor_for(settings)
        self._tracer = LightTracer(provider, "kansoku", redactor=redactor)
        self.redactor = self._tracer.redactor
        if propagator is None:
            if settings is not None:
                from kansoku.tracing._otel import build_propagator

                propagator = build_propagator(settings)
            else:
                propagator = propagate.get_global_textmap()
        self._propagator = propagator
        # The request headers the propagators read: the only ones looked at on the request path.
        self._fields = frozenset(field.lower().encode("latin-1") for field in propagator.fields)
        self._environ_keys = tuple((field.lower(), "HTTP_" + field.upper().replace("-", "_"))
                                   for field in propagator.fields)  # the same headers in a WSGI environ

    def start(self, scope: Scope) -> LightSpan | None:
        """Start the request's span (an ASGI scope) and make it current; None when tracing is off."""
        if self._tracer._processor is None:  # the SDK is disabled
            return None
        headers = scope.get("headers") or ()
        parent = None
        fields = self._fields
        for key, _ in headers:  # only the propagators' headers are needed now; the rest at the end
            if key in fields:
                parent = self._continue(headers)
                break
        return self._start(str(scope.get("method", "GET")), parent, request_attributes, scope)

    def start_wsgi(self, environ: Mapping[str, Any]) -> LightSpan | None:
        """Start the request's span (a WSGI environ) and make it current; None when tracing is off."""
        if self._tracer._processor is None:
            return None
        carrier = {name: [environ[key]] for name, key in self._environ_keys if key in environ}
        parent = self._propagator.extract(carrier, current_context()) if carrier else None
        return self._start(str(environ.get("REQUEST_METHOD", "GET")), parent, wsgi_request_attributes, environ)

    def _start(self, method: str, parent_context: Context | None, attributes: Any, source: Any) -> LightSpan:
        tracer = self._tracer
        if parent_context is None:
            parent_context = current_context()
        span = tracer.start_span(method if method in _METHODS else "HTTP", SpanKind.SERVER, parent_context,
                                 request=(attributes, source, method))
        span.token = use_span(span, parent_context)
        return span

    def _continue(self, headers: Any) -> Context:
        """The context the propagators read from the request's headers (on top of the current one)."""
        fields = self._fields
        carrier: dict[str, list[str]] = {}
        for key, value in headers:
            if key in fields:
                carrier.setdefault(key.decode("latin-1"), []).append(value.decode("latin-1"))
        return self._propagator.extract(carrier, current_context())

    @staticmethod
    def leave(handle: LightSpan | None) -> None:
        """Restore the context the span was started in, before the span ends (a WSGI body streams
        after the app returned: the span ends when the body is done, the context is left now)."""
        if handle is not None and handle.token is not None:
            restore(handle.token)
            handle.token = None

    def finish(
        self, handle: LightSpan | None, status: int, route: str | None, exc: BaseException | None
    ) -> None:
        """Record the route, status and error of the request, end its span, restore the context."""
        if handle is None:
            return
        try:
            if handle._attributes is not None and handle._end is None:  # recording
                handle._response = (status, route)  # made into attributes and name by readable()
                if isinstance(exc, Exception):
                    record_error(handle, exc, self.redactor)
                elif status >= 500:
                    handle._attributes["error.type"] = str(status)
                    handle.set_status(_ERROR)
                handle._end = time.time_ns()  # what end() does, one call less
                self._tracer.export(handle)
            else:
                handle.end()
        finally:
            if handle.token is not None:
                restore(handle.token)
                handle.token = None


def request_attributes(scope: Scope, method: str) -> dict[str, Any]:
    """The HTTP server semantic conventions of the request (the parts of the scope a server sets,
    which the app does not change)."""
    attributes: dict[str, Any] = {
        "http.request.method": method if method in _METHODS else "_OTHER",
        "url.path": scope.get("path", ""),
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if method not in _METHODS:
        attributes["http.request.method_original"] = method
    host = agent = None
    for key, value in scope.get("headers") or ():
        if key == b"host":
            host = value
        elif key == b"user-agent":
            agent = value
    client, server = scope.get("client"), scope.get("server")
    if client:
        attributes["client.address"] = client[0]
    if host is not None:
        address, port = _split_host(host.decode("latin-1"))
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    elif server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    if agent is not None:
        attributes["user_agent.original"] = agent.decode("latin-1")
    return attributes


def wsgi_request_attributes(environ: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The HTTP server semantic conventions of a WSGI request (PEP 3333's environ keys)."""
    attributes: dict[str, Any] = {
        "http.request.method": method if method in _METHODS else "_OTHER",
        "url.path": str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")),
        "url.scheme": environ.get("wsgi.url_scheme", "http"),
        "network.protocol.version": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")).partition("/")[2] or "1.1",
    }
    if method not in _METHODS:
        attributes["http.request.method_original"] = method
    if environ.get("REMOTE_ADDR"):
        attributes["client.address"] = environ["REMOTE_ADDR"]
    host = environ.get("HTTP_HOST")
    if host:
        address, port = _split_host(host)
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    elif environ.get("SERVER_NAME"):
        attributes["server.address"] = environ["SERVER_NAME"]
        if str(environ.get("SERVER_PORT", "")).isdigit():
            attributes["server.port"] = int(environ["SERVER_PORT"])
    if environ.get("HTTP_USER_AGENT"):
        attributes["user_agent.original"] = environ["HTTP_USER_AGENT"]
    return attributes


def _split_host(value: str) -> tuple[str, int | None]:
    """A Host header's address and port: `example.com:8080`, `[::1]:8080`, `example.com`."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        address, rest = value[1:end], value[end + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        address, _, port = value.partition(":")
    return address, int(port) if port.isdigit() else None
