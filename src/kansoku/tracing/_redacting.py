"""Every span kansoku exports goes through the redactor first: `RedactingSpanExporter`.

kansoku's own spans redact what they record (`traced` arguments, exception messages), but spans
also carry what others put there: the app's `span.set_attribute(...)`, the User-Agent and the
URL of a request, the attributes of third-party instrumentations (httpx's `url.full` with its
query string). So each exporter kansoku configures (the local store, OTLP, the console) is wrapped
in one that passes the span's name, attributes, events, links and status message through the same
`Redactor` as logs and error events, before anything is written or sent.

It runs in the BatchSpanProcessor's thread, never on the request path. A span with nothing to
redact is handed on as it is; otherwise a copy is made (the SDK's `ReadableSpan` is immutable).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from kansoku.redact import Redactor

__all__ = ["RedactingSpanExporter", "redact_attributes", "redact_span"]

# Attributes whose values kansoku's middleware makes itself (a method from a fixed set, the route
# template, numbers, the peer address): nothing a client or the app chose, so not scanned.
_OWN_ATTRIBUTES: Final = frozenset({
    "http.request.method", "url.scheme", "network.protocol.version", "http.response.status_code", "http.route",
    "server.port", "client.address", "error.type", "code.function", "code.namespace",
})


def redact_attributes(attributes: Mapping[str, Any] | None, redactor: Redactor) -> Mapping[str, Any] | None:
    """`attributes` itself when clean, else a copy with secrets masked (values stay OTel attribute types)."""
    if not attributes:
        return attributes
    out: dict[str, Any] | None = None
    for key, value in attributes.items():
        clean = value if key in _OWN_ATTRIBUTES else _attribute(key, value, redactor)
        if clean is not value and out is None:
            out = dict(attributes)
        if out is not None:
            out[key] = clean
    return attributes if out is None else out


def _attribute(key: str, value: Any, redactor: Redactor) -> Any:
    if redactor.is_sensitive_key(key):
        return redactor.mask
    if isinstance(value, str):
        clean = redactor.redact_value(key, value)
        return value if clean == value else clean
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 100_000_000_000:  # fewer digits than any PII number
            return value
        clean = redactor.redact_value(key, value)
        return value if clean == value else clean
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = tuple(_attribute(key, item, redactor) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def redact_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """`span` itself when nothing in it is secret, else a redacted copy."""
    # The SDK's properties make a new view on each access: read each one once.
    original_attributes, original_events, original_links = span.attributes, span.events, span.links
    name = redactor.redact_text(span.name)
    attributes = redact_attributes(original_attributes, redactor)
    events = [_event(event, redactor) for event in original_events]
    links = [_link(link, redactor) for link in original_links]
    status = original_status = span.status
    if status.description:
        description = redactor.redact_text(status.description)
        if description != status.description:
            status = Status(status.status_code, description)
    if (name == span.name and attributes is original_attributes and status is original_status
            and all(a is b for a, b in zip(events, original_events, strict=True))
            and all(a is b for a, b in zip(links, original_links, strict=True))):
        return span
    return ReadableSpan(
        name=name, context=span.context, parent=span.parent, resource=span.resource, attributes=attributes,
        events=events, links=links, kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope,
    )


def _event(event: Event, redactor: Redactor) -> Event:
    name = redactor.redact_text(event.name)
    original = event.attributes
    attributes = redact_attributes(original, redactor)
    if name == event.name and attributes is original:
        return event
    return Event(name, attributes, event.timestamp)


def _link(link: Link, redactor: Redactor) -> Link:
    original = link.attributes
    attributes = redact_attributes(original, redactor)
    return link if attributes is original else Link(link.context, attributes)


class RedactingSpanExporter(SpanExporter):
    """Hands `exporter` the spans with their secrets removed (see the module docstring)."""

    def __init__(self, exporter: SpanExporter, redactor: Redactor) -> None:
        self.exporter = exporter
        self.redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Redact each span, then export the batch."""
        return self.exporter.export([redact_span(span, self.redactor) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.exporter.force_flush(timeout_millis)
