"""Types shared across kansoku: aliases, TypedDicts and one-method Protocols for the seams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Literal, Protocol, TypeAlias, TypedDict

__all__ = [
    "ASGIApp",
    "Clock",
    "ErrorChange",
    "ErrorEvent",
    "ErrorProcessor",
    "EventDict",
    "ExceptionInfo",
    "FrameInfo",
    "IdFactory",
    "LogProcessor",
    "Message",
    "Notifier",
    "Receive",
    "RequestInfo",
    "Scope",
    "Send",
    "Severity",
]

# ASGI, as Starlette spells it.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

# structlog's processor shape: (logger, method_name, event_dict) -> event_dict.
EventDict: TypeAlias = MutableMapping[str, Any]
LogProcessor: TypeAlias = Callable[[Any, str, EventDict], Any]

Clock: TypeAlias = Callable[[], float]
"""Seconds since the epoch; injected so tests can fix time."""
IdFactory: TypeAlias = Callable[[], str]
"""Makes a new unique id (event ids, request ids); injected so tests can fix ids."""

Severity: TypeAlias = Literal["low", "medium", "high", "critical", "emergency"]


class FrameInfo(TypedDict, total=False):
    """One stack frame of a captured exception, innermost last."""

    filename: str
    abs_path: str
    module: str
    function: str
    lineno: int
    in_app: bool
    context_line: str
    pre_context: list[str]
    post_context: list[str]
    locals: dict[str, Any]


class ExceptionInfo(TypedDict, total=False):
    """One exception of a chain; `ErrorEvent.exceptions` lists the chain, the raised one last."""

    type: str
    module: str
    message: str
    frames: list[FrameInfo]
    relation: Literal["cause", "context", ""]
    frames_omitted: int


class RequestInfo(TypedDict, total=False):
    """What an error event keeps of the HTTP request that failed (already redacted)."""

    method: str
    route: str
    url: str  # the path and query
    origin: str  # scheme://host[:port], when known
    headers: dict[str, str]
    client: str
    user_agent: str
    status_code: int
    query: dict[str, Any]
    body: Any


class ErrorEvent(TypedDict, total=False):
    """One captured error: what is stored, shown and alerted on. A plain dict, JSON-ready."""

    event_id: str
    timestamp: float
    exception_type: str
    message: str
    exceptions: list[ExceptionInfo]
    culprit: str
    fingerprint: list[str]
    fingerprint_parts: list[str]
    group_key: str
    severity: Severity
    category: str
    level: str
    request: RequestInfo
    user: dict[str, Any]
    tags: dict[str, str]
    extra: dict[str, Any]
    request_id: str
    trace_id: str
    span_id: str
    breadcrumbs: list[dict[str, Any]]
    snapshot: dict[str, Any]
    service: str
    environment: str
    release: str
    host: str
    project: str  # the kansoku server project it was ingested into (absent: native)
    handled: bool
    mechanism: str
    title: str


ErrorProcessor: TypeAlias = Callable[[ErrorEvent], "ErrorEvent | None"]
"""A user hook on error events (sentry's shape): return the event, changed or not, or None to drop."""


class Notifier(Protocol):
    """An alert channel: sends one rendered notification; raises on a failed delivery."""

    async def send(self, notification: Mapping[str, Any]) -> None: ...


class ErrorChange(TypedDict, total=False):
    """What storing one event changed in its group; given to error listeners (the alert engine).

    `new`: the event opened a new group. `regression`: it reopened a resolved group. `count`: the
    group's total after this event. `group_id`: the group's row id (for dashboard links).
    `status`: the group's status after this event (unresolved, resolved or ignored).
    """

    group_key: str
    group_id: int
    new: bool
    regression: bool
    count: int
    status: str
