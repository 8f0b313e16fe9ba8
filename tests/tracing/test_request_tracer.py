"""The middleware's server span: semantic conventions, W3C continuation, errors, sampling, context."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from kansoku.settings import load_settings
from kansoku.tracing import RequestTracer, configure_tracing, inject_headers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def http_scope(
    path: str = "/items/42", method: str = "GET", headers: Sequence[tuple[bytes, bytes]] = ()
) -> dict[str, Any]:
    """An ASGI HTTP scope as uvicorn builds it."""
    return {"type": "http", "method": method, "path": path, "scheme": "http", "http_version": "1.1",
            "client": ("10.0.0.7", 51000), "server": ("127.0.0.1", 8000), "root_path": "",
            "headers": list(headers)}


def test_server_span_has_the_http_semantic_conventions(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """One SERVER span named `METHOD route` with method, route, status, path, addresses, user agent."""
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope(headers=[(b"host", b"shop.example:8443"), (b"user-agent", b"curl/8.5")]))
    assert handle is not None
    tracer.finish(handle, 200, "/items/{item_id}", None)
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/items/42",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "client.address": "10.0.0.7",
        "server.address": "shop.example",
        "server.port": 8443,
        "user_agent.original": "curl/8.5",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None
    assert span.events == ()
    assert span.resource.attributes["service.name"] == "svc-test"
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "kansoku"
    assert span.context is not None
    assert (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")) == (
        handle.trace_id, handle.span_id)
    assert span.start_time is not None and span.end_time is not None and span.end_time >= span.start_time


def test_traceparent_and_tracestate_are_continued(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """An incoming traceparent makes the span a child of the remote parent; outgoing headers carry it on."""
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope(headers=[(b"traceparent", f"00-{TRACE}-{PARENT}-01".encode()),
                                              (b"tracestate", b"vendor=abc")]))
    assert handle is not None
    outgoing = inject_headers({})
    tracer.finish(handle, 200, "/items/{item_id}", None)
    [span] = exporter.get_finished_spans()
    assert span.context is not None and span.parent is not None
    assert handle.trace_id == TRACE == format(span.context.trace_id, "032x")
    assert format(span.parent.span_id, "016x") == PARENT
    assert span.parent.is_remote
    assert outgoing["traceparent"] == f"00-{TRACE}-{handle.span_id}-01"
    assert outgoing["tracestate"] == "vendor=abc"


def test_span_is_current_during_the_request_and_restored_after(provider: TracerProvider) -> None:
    """start() makes the span current (children and logs see it); finish() restores the context."""
    tracer = RequestTracer(provider)
    assert not trace.get_current_span().get_span_context().is_valid
    handle = tracer.start(http_scope())
    assert trace.get_current_span() is handle
    with provider.get_tracer("test").start_as_current_span("child") as child:
        assert child.get_span_context().trace_id == handle.get_span_context().trace_id
    tracer.finish(handle, 200, None, None)
    assert not trace.get_current_span().get_span_context().is_valid


def test_child_spans_and_user_attributes_join_the_server_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """User code may annotate the current span; SDK child spans get the server span as parent."""
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope())
    current = trace.get_current_span()
    current.set_attribute("user.id", "u-17")
    current.set_attributes({"cart.items": 3, "cart.tags": ["a", "b"]})
    current.add_event("cache miss", {"key": "item:42"})
    with provider.get_tracer("test").start_as_current_span("load item"):
        pass
    tracer.finish(handle, 200, "/items/{item_id}", None)
    child, server = exporter.get_finished_spans()
    assert child.parent is not None and server.context is not None
    assert child.parent.span_id == server.context.span_id
    attributes = server.attributes or {}
    assert (attributes["user.id"], attributes["cart.items"], attributes["cart.tags"]) == ("u-17", 3, ("a", "b"))
    assert [(e.name, dict(e.attributes or {})) for e in server.events] == [("cache miss", {"key": "item:42"})]


def test_exception_marks_the_span_failed_with_a_redacted_event(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A failed request: status ERROR, error.type, and an exception event whose secrets are redacted."""
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope(method="POST", path="/login"))
    try:
        raise PermissionError("login failed for password=hunter2")
    except PermissionError as exc:
        tracer.finish(handle, 500, "/login", exc)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "PermissionError: login failed for password=[REDACTED]"
    assert (span.attributes or {})["error.type"] == "PermissionError"
    [event] = span.events
    attributes = dict(event.attributes or {})
    assert event.name == "exception"
    assert attributes["exception.type"] == "PermissionError"
    assert attributes["exception.message"] == "login failed for password=[REDACTED]"
    assert "hunter2" not in str(attributes["exception.stacktrace"])
    assert "test_exception_marks_the_span_failed" in str(attributes["exception.stacktrace"])


def test_5xx_is_an_error_and_4xx_is_not(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """Server spans: a 5xx answer is an error (error.type is the code); a 4xx is the client's."""
    tracer = RequestTracer(provider)
    tracer.finish(tracer.start(http_scope()), 503, "/items/{item_id}", None)
    tracer.finish(tracer.start(http_scope()), 404, None, None)
    unavailable, missing = exporter.get_finished_spans()
    assert unavailable.status.status_code is StatusCode.ERROR
    assert (unavailable.attributes or {})["error.type"] == "503"
    assert missing.status.status_code is StatusCode.UNSET
    assert missing.name == "GET"  # no route matched: the name stays low-cardinality
    assert "http.route" not in (missing.attributes or {})


def test_unknown_method_and_ipv6_host(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """A non-standard method is `_OTHER` (original kept); an IPv6 Host header is split correctly."""
    tracer = RequestTracer(provider)
    tracer.finish(tracer.start(http_scope(method="PURGE", headers=[(b"host", b"[::1]:8080")])), 200, "/x", None)
    [span] = exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert span.name == "HTTP /x"
    assert (attributes["http.request.method"], attributes["http.request.method_original"]) == ("_OTHER", "PURGE")
    assert (attributes["server.address"], attributes["server.port"]) == ("::1", 8080)


def test_invalid_traceparent_starts_a_new_trace(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """A malformed traceparent is ignored: the request starts its own trace."""
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope(headers=[(b"traceparent", b"00-nothex-00f067aa0ba902b7-01")]))
    assert handle is not None
    tracer.finish(handle, 200, None, None)
    [span] = exporter.get_finished_spans()
    assert span.parent is None
    assert handle.trace_id != TRACE and len(handle.trace_id) == 32


def test_unsampled_parent_is_respected_and_propagated(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Parent-based sampling: an upstream 'not sampled' is kept, nothing is exported, ids still flow."""
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope(headers=[(b"traceparent", f"00-{TRACE}-{PARENT}-00".encode())]))
    assert handle is not None and not handle.sampled and not handle.is_recording()
    outgoing = inject_headers({})
    tracer.finish(handle, 500, "/x", RuntimeError("boom"))
    assert exporter.get_finished_spans() == ()
    assert outgoing["traceparent"] == f"00-{TRACE}-{handle.span_id}-00"


def test_sample_rate_zero_exports_nothing_but_keeps_ids(exporter: InMemorySpanExporter) -> None:
    """At rate 0 no span is recorded, yet the request has a trace id for logs and propagation."""
    provider = configure_tracing(load_settings(trace_sample_rate=0.0, store_spans=False), None, "svc")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope())
    assert handle is not None and not handle.sampled
    assert trace.get_current_span().get_span_context().trace_id == int(handle.trace_id, 16)
    tracer.finish(handle, 200, "/items/{item_id}", None)
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


def test_settings_extra_redact_keys_apply_to_exception_messages(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """RequestTracer(provider, settings) redacts with the configured redactor (PII off: e-mails go)."""
    tracer = RequestTracer(provider, load_settings(allow_pii=False))
    handle = tracer.start(http_scope())
    tracer.finish(handle, 500, None, ValueError("no account for ann@example.com"))
    [span] = exporter.get_finished_spans()
    assert span.status.description == "ValueError: no account for [REDACTED EMAIL]"


def test_light_span_follows_the_span_api_rules(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """OK status is final, record_exception adds a redacted event, nothing changes after end()."""
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope())
    assert handle is not None
    handle.set_status(StatusCode.OK)
    handle.set_status(StatusCode.ERROR, "ignored: OK is final")
    handle.record_exception(ValueError("token=abc123"))
    handle.set_attribute("ignored.none", None)
    handle.add_link(handle.get_span_context())
    tracer.finish(handle, 200, None, None)
    handle.set_attribute("after.end", 1)
    handle.update_name("after end")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.OK
    assert [dict(e.attributes or {})["exception.message"] for e in span.events] == ["token=[REDACTED]"]
    assert "ignored.none" not in (span.attributes or {}) and "after.end" not in (span.attributes or {})
    assert span.name == "GET"
    assert not handle.is_recording()


def test_disabled_sdk_means_no_server_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_SDK_DISABLED=true the SDK makes no spans: start() returns None, finish(None) is fine."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    provider = configure_tracing(load_settings(store_spans=False), None, "off")
    tracer = RequestTracer(provider)
    handle = tracer.start(http_scope())
    assert handle is None
    tracer.finish(handle, 200, "/x", None)
    provider.shutdown()
