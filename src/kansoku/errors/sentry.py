"""Optional forwarding of stored (redacted) events to Sentry, when `KANSOKU_SENTRY_DSN` is set.

A private `sentry_sdk.Client` is used, with no integrations, so kansoku neither patches the app
nor touches a Sentry setup the app made itself. Events are sent with kansoku's group key as their
fingerprint, so Sentry groups them the way kansoku does, in Sentry's event schema: the request
interface has only its own fields (an absolute `url`, `method`, `query_string`, `data`, `headers`,
`env`), the route is the `transaction` and a tag, the response status a `response` context.

During a Sentry outage each event is tried once (no urllib3 retries, whose warnings would be three
lines an event); what is not sent is counted (`kansoku_export_lost_total{target="sentry"}`), and
the outage is one line when it starts and one when Sentry answers again (`kansoku._outage.Link`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from kansoku._outage import Link
from kansoku.exceptions import ConfigError
from kansoku.logs import get_logger
from kansoku.settings import Settings
from kansoku.typing import ErrorEvent, ExceptionInfo

__all__ = ["SentryForwarder", "to_sentry_event"]

_log = get_logger("kansoku.errors")

_LEVELS = {"fatal": "fatal", "critical": "fatal", "error": "error", "warning": "warning"}


def _import_sentry() -> Any:
    try:
        import sentry_sdk
    except ImportError:
        raise ConfigError(
            "KANSOKU_SENTRY_DSN is set but sentry-sdk is not installed: pip install 'kansoku[sentry]'"
        ) from None
    return sentry_sdk


class SentryForwarder:
    """Sends kansoku's events to Sentry through a private client (`transport` for tests)."""

    def __init__(self, dsn: str, *, settings: Settings, transport: Any = None) -> None:
        sentry_sdk = _import_sentry()
        options: dict[str, Any] = {
            "dsn": dsn,
            "default_integrations": False,
            "auto_enabling_integrations": False,
            "environment": settings.environment,
            "max_breadcrumbs": 0,
        }
        if settings.version:
            options["release"] = settings.version
        self.link = Link("sentry", _log)
        options["transport"] = transport if transport is not None else _transport_class()
        self._client = sentry_sdk.Client(**options)
        if transport is None:
            self._client.transport.link = self.link

    def forward(self, event: ErrorEvent) -> None:
        """Hand one event to the Sentry client's own background transport."""
        self._client.capture_event(to_sentry_event(event))

    def flush(self, timeout: float = 2.0) -> None:
        """Wait until the Sentry client has tried to send what it holds."""
        self._client.flush(timeout=timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Flush the Sentry client and close it."""
        self._client.close(timeout=timeout)


def _transport_class() -> type:
    """sentry-sdk's HTTP transport, telling kansoku's Link what happened to each envelope."""
    from sentry_sdk.transport import HttpTransport

    class _Transport(HttpTransport):
        link: Link | None = None
        status: int | None = None

        def _request(self, method: str, endpoint_type: Any, body: Any, headers: Any) -> Any:
            # One try: urllib3's retries would each log a warning, for every event, all outage long.
            return self._pool.request(method, self._auth.get_api_url(endpoint_type), body=body,
                                      headers=headers, retries=False)

        def _handle_response(self, response: Any, envelope: Any) -> None:
            self.status = response.status
            super()._handle_response(response=response, envelope=envelope)

        def _send_envelope(self, envelope: Any) -> None:
            self.status = None
            try:
                super()._send_envelope(envelope)
            except Exception as exc:  # the outage is one line, not a traceback per event
                if self.link is not None:
                    self.link.failed(f"{type(exc).__name__}: {exc}", lost=_errors_in(envelope))
                return
            if self.link is None or self.status is None or self.status == 429:
                return  # not sent (rate limited): counted, Sentry is there
            if 200 <= self.status < 300:
                self.link.succeeded()
            else:
                self.link.failed(f"HTTP {self.status}", lost=_errors_in(envelope))

        def record_lost_event(self, reason: str, data_category: Any = None, item: Any = None, *,
                              quantity: int = 1) -> None:
            # A failed send is counted by _send_envelope (with the outage); the rest here.
            if self.link is not None and reason not in _SEND_FAILURES and (
                    item is None or item.data_category == "error"):
                self.link.count_lost(quantity)
            super().record_lost_event(reason, data_category, item, quantity=quantity)

    return _Transport


_SEND_FAILURES = frozenset({"network_error", "send_error"})


def _errors_in(envelope: Any) -> int:
    return sum(1 for item in getattr(envelope, "items", ()) if item.data_category == "error")


def _exception(info: ExceptionInfo, event: ErrorEvent, raised: bool) -> dict[str, Any]:
    frames = []
    for frame in info.get("frames", []):
        data: dict[str, Any] = {k: frame[k] for k in ("filename", "abs_path", "module", "function", "lineno",
                                                      "in_app", "context_line", "pre_context", "post_context")
                                if k in frame}
        if "locals" in frame:
            data["vars"] = frame["locals"]
        frames.append(data)
    value: dict[str, Any] = {
        "type": info.get("type", "Error").rsplit(".", 1)[-1], "module": info.get("module"),
        "value": info.get("message", ""), "stacktrace": {"frames": frames},
    }
    if raised:
        value["mechanism"] = {"type": event.get("mechanism", "generic"),
                              "handled": event.get("handled", True)}
    return value


def to_sentry_event(event: ErrorEvent) -> dict[str, Any]:
    """kansoku's event in Sentry's event format."""
    exceptions = event.get("exceptions", [])
    out: dict[str, Any] = {
        "event_id": event["event_id"],
        "timestamp": event["timestamp"],
        "level": _LEVELS.get(event.get("level", "error"), "error"),
        "platform": "python",
        "server_name": event.get("host"),
        "environment": event.get("environment"),
        "culprit": event.get("culprit"),
        "fingerprint": ["kansoku", event["group_key"]],
        "exception": {"values": [_exception(e, event, i == len(exceptions) - 1)
                                 for i, e in enumerate(exceptions)]},
        "tags": {**event.get("tags", {}), "kansoku.severity": event.get("severity", ""),
                 "kansoku.category": event.get("category", ""), "service": event.get("service", "")},
        "extra": {**event.get("extra", {}), "kansoku.group_key": event["group_key"]},
    }
    if event.get("release"):
        out["release"] = event["release"]
    if event.get("user"):
        out["user"] = dict(event["user"])
    contexts: dict[str, Any] = {}
    request = event.get("request")
    if request:
        out["request"], route, status = _request(request)
        if route:
            out["transaction"] = route
            out["tags"]["http.route"] = route
        if status:
            contexts["response"] = {"status_code": status}
    if event.get("breadcrumbs"):
        out["breadcrumbs"] = {"values": event["breadcrumbs"]}
    if event.get("trace_id"):
        contexts["trace"] = {"trace_id": event["trace_id"], "span_id": event.get("span_id", "")}
    if contexts:
        out["contexts"] = contexts
    return out


def _request(request: Any) -> tuple[dict[str, Any], str | None, int | None]:
    """Sentry's request interface from kansoku's request info; also the route and the status."""
    path = str(request.get("url", ""))
    path, _, query = path.partition("?")
    origin = request.get("origin", "")
    out: dict[str, Any] = {"url": f"{origin}{path}" if origin and path.startswith("/") else path}
    if request.get("method"):
        out["method"] = request["method"]
    if request.get("query"):
        out["query_string"] = urlencode(request["query"], doseq=True)
    elif query:
        out["query_string"] = query
    if "body" in request:
        out["data"] = request["body"]
    headers = dict(request.get("headers") or {})
    if request.get("user_agent") and not any(k.lower() == "user-agent" for k in headers):
        headers["User-Agent"] = request["user_agent"]
    if headers:
        out["headers"] = headers
    if request.get("client"):
        out["env"] = {"REMOTE_ADDR": request["client"]}
    return out, request.get("route"), request.get("status_code")
