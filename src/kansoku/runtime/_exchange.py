"""One request's record, shared by the ASGI and the WSGI middleware, and the seam for frameworks.

Both middlewares do the same work per request; only the protocol differs (an ASGI `send` to
watch, or a WSGI `start_response` and body iterable). The shared part is here: the request id,
the capture of the app's exception, and at the end the RED metrics, the request statistics, the
event for a 5xx answered without an exception, the access-log line and the server span.

While a request runs, its `Exchange` is the value of `CURRENT`, so that code inside the request
(a framework integration, an adapter a user writes) can name its route template
(`set_route`) or report an exception the framework turned into a 500 page (`capture_exception`
attaches it to the request, and the request then makes no second event). The variable holds the
exchange object itself: threads and tasks that copy the context (Django's `sync_to_async`)
change the one exchange.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar
from random import getrandbits as _getrandbits
from typing import Any, Final

from kansoku._safety import suppress_internal_errors
from kansoku.exceptions import ServerErrorResponse
from kansoku.logs import UNSTORED, get_logger
from kansoku.metrics._http import UNMATCHED
from kansoku.runtime.endpoints import Network, in_networks, parse_networks
from kansoku.typing import IdFactory, RequestInfo

__all__ = ["CURRENT", "PROBES", "Exchange", "Recorder", "client_address", "current_exchange", "new_request_id",
           "origin_of", "set_route", "valid_request_id"]

CURRENT: ContextVar[Exchange | None] = ContextVar("kansoku_exchange", default=None)
_VALID_ID: Final = re.compile(r"[A-Za-z0-9._:@/+=\-]{1,128}")
_perf_counter = time.perf_counter
# The access line's fields that come from the client and are scanned for secrets; the others are
# kansoku's own: numbers, the route template, the client address (the peer or a validated IP).
_FROM_CLIENT: Final = ("method", "path", "user_agent")
PROBES: Final = frozenset({"/metrics", "/health", "/ready"})
"""kansoku's endpoints that scrapers and orchestrators poll: not counted in the RED metrics."""
_ANY: Final = parse_networks(["0.0.0.0/0", "::/0"])


def new_request_id() -> str:
    """A new request id: 32 random hex digits.

    A correlation id, not a secret: the fast generator of `random` does (a third of the cost of
    `os.urandom`), and it reseeds itself in forked workers.
    """
    return f"{_getrandbits(128):032x}"


def valid_request_id(value: str | bytes) -> bool:
    """Whether an incoming id may be kept: 1-128 characters of A-Z a-z 0-9 . _ : @ / + = -."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return _VALID_ID.fullmatch(text) is not None


def current_exchange() -> Exchange | None:
    """The request being answered in this context, or None outside one."""
    return CURRENT.get()


def set_route(template: str) -> None:
    """Name the route template of the request being answered (`/items/{item_id}`).

    For frameworks kansoku has no integration for: call it where the framework has matched the
    route (a hook, a middleware, a decorator). Metrics, the access line, the span name and
    error events then use it instead of `<unmatched>`. Outside a request it does nothing.
    """
    exchange = CURRENT.get()
    if exchange is not None:
        exchange.route = template


class Exchange:
    """One request as both middlewares record it; subclasses add the protocol's own parts."""

    __slots__ = ("error", "event_id", "handle", "method", "observed", "path", "recorder", "request_size",
                 "response_size", "route", "started_at", "status", "user_agent")

    def __init__(self, recorder: Recorder, method: str, path: str) -> None:
        self.recorder, self.method, self.path = recorder, method, path
        self.started_at = _perf_counter()
        self.status = self.request_size = self.response_size = 0
        self.route: str | None = None
        self.user_agent = ""
        self.handle: Any = None
        self.error: BaseException | None = None  # the app's unhandled exception, or a captured one
        self.event_id: str | None = None  # the error event of this request, when one was made
        self.observed = True  # False: kept out of traces, RED metrics and stored logs (observe_exclude)

    def live_route(self) -> str:
        """The route template as far as known now (requests in progress, error events)."""
        return self.route or UNMATCHED

    def client(self) -> str:
        """The client's address (the peer, or the hop before the trusted proxies)."""
        return ""

    def origin(self) -> str:
        """`scheme://host[:port]` the client asked for, or "" when unknown."""
        return ""

    def request_info(self) -> RequestInfo:
        """What an error event keeps of this request."""
        info: RequestInfo = {"method": self.method, "route": self.live_route(), "url": self.path,
                             "client": self.client(), "user_agent": self.user_agent}
        origin = self.origin()
        if origin:
            info["origin"] = origin
        return info


_HOST: Final = re.compile(r"(?:[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def origin_of(scheme: str, host: str, server: tuple[str, int | None] | None) -> str:
    """`scheme://host`: the Host header when it is a host name or address, else the server's address.

    The Host header is the client's word: anything but a plain host[:port] (a path, a space, a
    quote, 300 characters) is not used.
    """
    if not _HOST.fullmatch(host):
        address = "" if not server else f"{server[0]}:{server[1]}" if server[1] else str(server[0])
        host = address if _HOST.fullmatch(address) else ""
    scheme = scheme if scheme in ("http", "https") else "http"
    return f"{scheme}://{host}" if host else ""


class Recorder:
    """The per-request work of both middlewares, configured once from the runtime."""

    def __init__(self, runtime: Any, *, new_id: IdFactory = new_request_id) -> None:
        config = runtime.settings
        self.runtime, self.new_id = runtime, new_id
        self.tracer = runtime.request_tracer
        self.proxies = parse_networks(config.trusted_proxies)
        # Exclusions are exact paths, or prefixes when they end in "*" ("/static/*"); None: no log.
        excluded = config.access_log_exclude
        self.quiet = frozenset(p for p in excluded if p[-1:] != "*") if config.access_log else None
        self.quiet_prefixes = tuple(p[:-1] for p in excluded if p[-1:] == "*")
        unobserved = [p.replace("{route_prefix}", config.route_prefix) for p in config.observe_exclude]
        self.unobserved = frozenset(p for p in unobserved if p[-1:] != "*")
        self.unobserved_prefixes = tuple(p[:-1] for p in unobserved if p[-1:] == "*")
        self.capture_5xx = config.capture_5xx_responses
        self.access, self.log = get_logger("kansoku.access"), get_logger("kansoku.middleware")
        self.metrics, self.in_progress = runtime.http_metrics, runtime.http_metrics.in_progress
        # The per-minute statistics, unless the metrics count them already (the runtime wires that).
        stats = runtime.request_stats
        self.stats = None if stats is None or getattr(self.metrics, "stats", None) is stats else stats

    def observed(self, path: str) -> bool:
        """Whether requests to `path` go into traces, RED metrics and stored logs (observe_exclude)."""
        return path not in self.unobserved and not path.startswith(self.unobserved_prefixes)

    def request_id(self, wanted: str | None) -> str:
        """The incoming id when valid, else a new one."""
        return wanted if wanted and _VALID_ID.fullmatch(wanted) else self.new_id()

    def capture(self, exchange: Exchange, exc: BaseException, *, mechanism: str = "middleware",
                handled: bool = False, **context: Any) -> str:
        """Record an exception of the request as an error event; its id (made up if none was stored)."""
        info = exchange.request_info()
        event_id = _call_safely("middleware.capture", self.runtime.capture_exception, exc, request=info,
                                mechanism=mechanism, handled=handled, **context) or self.new_id()
        exchange.event_id, exchange.error = str(event_id), exc
        if mechanism == "middleware":  # what the server would log for an exception it saw
            self.log.error("unhandled exception", exc_info=exc, event_id=event_id, method=exchange.method,
                           route=info["route"], path=exchange.path)
        return str(event_id)

    def finish(self, exchange: Exchange, *, own: bool = False) -> None:
        """Metrics, statistics, the 5xx event, the access-log line and the span of one request.

        `own`: kansoku answered it (its endpoints, the dashboard): never a 5xx event for those.
        """
        try:
            duration = _perf_counter() - exchange.started_at
            self.in_progress.untrack(exchange)
            route = exchange.live_route()
            status = exchange.status or 500  # the server answers 500 when an app sends nothing
            handle = exchange.handle
            trace_id = None if handle is None else handle.trace_id
            # a scraper's or orchestrator's poll is not app traffic, nor a path left out (observe_exclude)
            if exchange.observed and (not own or route not in PROBES):
                self.metrics.observe(exchange.method, route, status, duration, exchange.request_size,
                                     exchange.response_size, trace_id)
                if self.stats is not None:
                    self.stats.record(status, duration)
            if status >= 500 and exchange.event_id is None and self.capture_5xx and not own:
                self.capture(exchange, _server_error(exchange.method, route, status), mechanism="http-status",
                             fingerprint=["http-status", exchange.method, route, str(status)])
            path = exchange.path
            quiet = self.quiet
            if quiet is not None and path not in quiet and not path.startswith(self.quiet_prefixes):
                # request_id comes from the bound context, like on every other line of the request.
                fields = {"method": exchange.method, "route": route, "path": path, "status": status,
                          "duration_ms": round(duration * 1e6) / 1000, "response_size": exchange.response_size,
                          "client": exchange.client(), "user_agent": exchange.user_agent}
                if exchange.event_id:
                    fields["event_id"] = exchange.event_id
                if handle is not None:
                    fields["trace_id"], fields["span_id"] = trace_id, handle.span_id
                # Not a breadcrumb nor an error, and its ids are in: the log hooks have nothing to do.
                unstored = None if exchange.observed else UNSTORED.set(True)  # WSGI bodies end outside
                self.access.fields("info", "request", fields, scan=_FROM_CLIENT, hooks=False)
                if unstored is not None:
                    UNSTORED.reset(unstored)
            if handle is not None:
                error = exchange.error if status >= 500 or exchange.event_id is None else None
                if isinstance(error, ServerErrorResponse):
                    error = None  # the span says 5xx by itself
                self.tracer.finish(handle, status, None if route == UNMATCHED else route, error)
        except Exception as exc:
            internal_error("middleware.record", exc)


def _server_error(method: str, route: str, status: int) -> ServerErrorResponse:
    error = ServerErrorResponse(f"{method} {route} answered {status}")
    error.status_code = status
    return error


def client_address(peer: str, forwarded: str, proxies: tuple[Network, ...]) -> str:
    """The client address: `peer`, or the X-Forwarded-For hop before the trusted `proxies`."""
    if not proxies or not in_networks(peer, proxies):
        return peer
    host = peer
    for hop in reversed([hop.strip() for hop in forwarded.split(",") if hop.strip()]):
        if not in_networks(hop, proxies):
            return hop if in_networks(hop, _ANY) else host  # garbage is not an address
        host = hop
    return host


def internal_error(where: str, exc: Exception) -> None:
    """Report kansoku's own failure (raised in strict mode, so tests see it)."""
    with suppress_internal_errors(where):
        raise exc


def _call_safely(where: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        internal_error(where, exc)
        return None
