"""What an orchestrator or a scraper polls: `/health`, `/ready`, `/metrics`, and kansoku's own health.

- `/health` is liveness: 200 while the process answers. It never fails because the machine is busy
  (the chapter's "CPU over 80% is unhealthy" restarts pods exactly when they are needed most).
- `/ready` is readiness: the checks that parts register (store reachable, queues not saturated),
  503 naming the failing ones.
- `/metrics` is the Prometheus exposition (OpenMetrics with exemplars when asked, gzip when asked),
  optionally behind a bearer token or an address allowlist.

The endpoints are small ASGI callables that `KansokuMiddleware` answers itself, so any ASGI app
gets them without routing.
"""

from __future__ import annotations

import gzip
import hmac
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import anyio
import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from kansoku._worker import BackgroundWorker
from kansoku.metrics import _multiprocess
from kansoku.redact import Redactor
from kansoku.settings import Settings
from kansoku.typing import Receive, Scope, Send

__all__ = [
    "Check",
    "Denial",
    "MetricsEndpoint",
    "Readiness",
    "ReadyEndpoint",
    "health_endpoint",
    "in_networks",
    "parse_networks",
    "queue_check",
    "ready_report",
    "send_json",
]

Check = Callable[[], "str | None"]
"""A readiness check: None when fine, else a short description of the problem."""
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_JSON: Final = (b"content-type", b"application/json")


class Readiness:
    """Named readiness checks, registered by the parts that can be unready."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self.informational: set[str] = set()

    def register(self, name: str, check: Check, *, informational: bool = False) -> None:
        """Add (or replace) the check called `name`.

        `informational`: its problem is reported (under `degraded`) but /ready stays 200. For
        what kansoku sends elsewhere (Sentry, an OTLP collector): an outage there must not take
        the app out of its load balancer.
        """
        self._checks[name] = check
        if informational:
            self.informational.add(name)
        else:
            self.informational.discard(name)

    def results(self) -> dict[str, str | None]:
        """Run every check (they may do I/O: call this off the event loop); a raising check fails."""
        results: dict[str, str | None] = {}
        for name, check in list(self._checks.items()):
            try:
                results[name] = check()
            except Exception as exc:
                results[name] = f"check raised {type(exc).__name__}: {exc}"
        return results


def queue_check(worker: BackgroundWorker, *, saturated: float = 0.9) -> Check:
    """A readiness check failing while `worker`'s queue is at least `saturated` full."""

    def check() -> str | None:
        depth = worker.depth
        if depth >= worker.maxsize * saturated:
            return f"queue {worker.name!r} saturated ({depth}/{worker.maxsize})"
        return None

    return check


# --- endpoints ----------------------------------------------------------------------------------------


async def send_json(send: Send, status: int, data: Any, *, head: bool = False,
                    headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Send a complete JSON response (no body for HEAD)."""
    await send_bytes(send, status, orjson.dumps(data), [_JSON, *headers], head=head)


async def send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], *,
                     head: bool = False) -> None:
    """Send a complete response with a content-length."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def health_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Liveness: the process answers."""
    await send_json(send, 200, {"status": "ok"}, head=scope["method"] == "HEAD")


_REDACT = Redactor()


class ReadyEndpoint:
    """Readiness: 200 when every check passes, else 503 naming the failing ones."""

    def __init__(self, readiness: Readiness, *, timeout: float = 5.0) -> None:
        self.readiness = readiness
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the checks in a thread (they may do I/O), with a time limit."""
        results: dict[str, str | None] = {"checks": f"did not finish within {self.timeout:g}s"}
        with anyio.move_on_after(self.timeout):
            results = await anyio.to_thread.run_sync(self.readiness.results, abandon_on_cancel=True)
        status, body = ready_report(results, self.readiness.informational)
        await send_json(send, status, body, head=scope["method"] == "HEAD")


def ready_report(results: dict[str, str | None], informational: Iterable[str] = ()) -> tuple[int, dict[str, Any]]:
    """The /ready status and body for the checks' results: 200, or 503 naming the failing ones.

    Problems of `informational` checks are listed under `degraded` and leave the status 200.
    """
    soft = frozenset(informational)
    degraded = sorted(name for name, problem in results.items() if problem is not None and name in soft)
    failing = {name: problem for name, problem in results.items() if problem is not None and name not in soft}
    # /ready is open to orchestrators like /health: a problem text (a driver's error, say) is
    # scrubbed before it leaves, in case it quotes a connection string.
    body: dict[str, Any] = {"status": "unavailable" if failing else "ok",
                            "checks": {name: _REDACT.redact_text(problem) if problem else "ok"
                                       for name, problem in sorted(results.items())}}
    if failing:
        body["failing"] = sorted(failing)
    if degraded:
        body["degraded"] = degraded
    return (503 if failing else 200), body


Denial = tuple[int, str, list[tuple[bytes, bytes]]]


class MetricsEndpoint:
    """The Prometheus exposition of `registry` (in multi-process mode, of every worker's files)."""

    def __init__(self, registry: CollectorRegistry, settings: Settings,
                 client_of: Callable[[Scope], str], *, exemplars: _multiprocess.Exemplars | None = None) -> None:
        if settings.multiprocess_dir is not None:
            from kansoku.metrics._system import SystemCollector

            registry = _multiprocess.scrape_registry(settings.multiprocess_dir, SystemCollector(process=False),
                                                     exemplars=exemplars)
        self.registry = registry
        self._directory = settings.multiprocess_dir
        self._token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None
        self._allow = parse_networks(settings.metrics_allow)
        self._client_of = client_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check access, then render in a thread (collectors may read files and take locks)."""
        headers = _headers(scope, (b"accept", b"accept-encoding", b"authorization"))
        head = scope["method"] == "HEAD"
        denied = self.denied(self._client_of(scope), headers.get(b"authorization", b""))
        if denied is not None:
            status, error, extra = denied
            await send_json(send, status, {"error": error}, head=head, headers=extra)
            return
        accept = headers.get(b"accept", b"").decode("latin-1")
        encoding = headers.get(b"accept-encoding", b"").decode("latin-1")
        body, response_headers = await anyio.to_thread.run_sync(self.render, accept, encoding)
        await send_bytes(send, 200, body, response_headers, head=head)

    def render(self, accept: str, accept_encoding: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The exposition body and headers for these Accept and Accept-Encoding values."""
        if self._directory is not None:
            _multiprocess.mark_dead_workers(self._directory)
        encoder, content_type = choose_encoder(accept)
        body = encoder(self.registry)
        headers = [(b"content-type", content_type.encode()), (b"vary", b"Accept, Accept-Encoding")]
        if gzip_accepted(accept_encoding):
            body = gzip.compress(body, compresslevel=6)
            headers.append((b"content-encoding", b"gzip"))
        return body, headers

    def denied(self, client: str, authorization: bytes) -> Denial | None:
        """Why `client` with this Authorization header may not scrape (status, error, headers), or None."""
        if self._allow and not in_networks(client, self._allow):
            return 403, "forbidden", []
        if self._token is not None:
            scheme, _, given = authorization.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
                return 401, "unauthorized", [(b"www-authenticate", b'Bearer realm="metrics"')]
        return None


def _headers(scope: Scope, names: Iterable[bytes]) -> dict[bytes, bytes]:
    wanted = frozenset(names)
    return {name: value for name, value in scope.get("headers", ()) if name in wanted}


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and networks ("10.0.0.0/8", "127.0.0.1", "::1") as networks."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def in_networks(host: str | None, networks: Iterable[Network]) -> bool:
    """Whether `host` (an IP address) is in one of `networks`; False for a name or garbage."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)
