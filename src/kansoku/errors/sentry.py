"""Optional forwarding of stored (redacted) events to Sentry, when `KANSOKU_SENTRY_DSN` is set.

A private `sentry_sdk.Client` is used, with no integrations, so kansoku neither patches the app
nor touches a Sentry setup the app made itself. Events are sent with kansoku's group key as their
fingerprint, so Sentry groups them the way kansoku does.
"""

from __future__ import annotations

from typing import Any

from kansoku.exceptions import ConfigError
from kansoku.settings import Settings
from kansoku.typing import ErrorEvent, ExceptionInfo

__all__ = ["SentryForwarder", "to_sentry_event"]

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
        if transport is not None:
            options["transport"] = transport
        self._client = sentry_sdk.Client(**options)

    def forward(self, event: ErrorEvent) -> None:
        """Hand one event to the Sentry client's own background transport."""
        self._client.capture_event(to_sentry_event(event))

    def close(self, timeout: float = 2.0) -> None:
        """Flush the Sentry client and close it."""
        self._client.close(timeout=timeout)


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
    for name in ("user", "request"):
        if event.get(name):
            out[name] = dict(event[name])
    if "request" in out and "body" in out["request"]:
        out["request"]["data"] = out["request"].pop("body")
    if event.get("breadcrumbs"):
        out["breadcrumbs"] = {"values": event["breadcrumbs"]}
    if event.get("trace_id"):
        out["contexts"] = {"trace": {"trace_id": event["trace_id"], "span_id": event.get("span_id", "")}}
    return out
