"""The standard OTEL_* variables, as the SDK documents them, through the real runtime and a real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import baggage
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import kansoku
from kansoku import runtime as _runtime
from kansoku.exceptions import ConfigError
from kansoku.settings import load_settings
from kansoku.store.tables import spans
from kansoku.testing import capture_logs
from kansoku.tracing import build_propagator, inject_headers
from kansoku.tracing._otel import build_sampler, span_exporter_target

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
Serve = Callable[[Any], AbstractContextManager[str]]


async def _hop(request: Request) -> JSONResponse:
    """What this service would send to the next one, and the baggage it sees."""
    return JSONResponse({"headers": dict(inject_headers({})), "baggage": dict(baggage.get_all())})


def _app() -> Starlette:
    return Starlette(routes=[Route("/hop", _hop)])


@pytest.fixture
def instrumented(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """instrument() a fresh app on a throwaway store (settings from the environment and keywords)."""

    def make(**overrides: Any) -> Any:
        return kansoku.instrument(_app(), database_url=f"sqlite:///{tmp_path / 'k.db'}", strict=True,
                                  log_format="json", **overrides)

    yield make
    _runtime.shutdown(5.0)


def _stored_spans(runtime: Any) -> list[dict[str, Any]]:
    runtime.close(5.0)
    with runtime.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(spans))]


@pytest.mark.parametrize(("sampler", "stored"), [("always_on", 3), ("always_off", 0)])
def test_otel_traces_sampler(sampler: str, stored: int, instrumented: Any, serve_app: Serve,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_TRACES_SAMPLER=always_off stores no spans, even for a sampled parent; always_on stores each."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    app = instrumented()
    with serve_app(app) as base, httpx.Client(base_url=base) as client:
        for n in range(3):
            headers = {"traceparent": f"00-{TRACE}-{SPAN}-01"} if n == 0 else {}
            assert client.get("/hop", headers=headers).status_code == 200
    assert len(_stored_spans(app.state.kansoku)) == stored


def test_b3_headers_are_continued_in_and_out(instrumented: Any, serve_app: Serve,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_PROPAGATORS=b3multi: the server span continues X-B3-* ids and outgoing calls carry b3."""
    monkeypatch.setenv("OTEL_PROPAGATORS", "b3multi")
    app = instrumented()
    with serve_app(app) as base, httpx.Client(base_url=base) as client:
        sent = client.get("/hop", headers={"X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN, "X-B3-Sampled": "1"}).json()
    [server] = _stored_spans(app.state.kansoku)
    assert (server["trace_id"], server["parent_id"]) == (TRACE, SPAN)
    out = sent["headers"]
    assert (out["x-b3-traceid"], out["x-b3-spanid"], out["x-b3-sampled"]) == (TRACE, server["span_id"], "1")
    assert "traceparent" not in out


def test_baggage_is_continued_and_a_third_party_processor_sees_the_server_span_at_start(
        instrumented: Any, serve_app: Serve) -> None:
    """Default propagators: incoming baggage is in the request's context, goes out again, and
    opentelemetry-processor-baggage (which only acts in on_start) copies it onto the server span."""
    app = instrumented()
    started: list[tuple[str, Any]] = []

    class Recorder(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            started.append((span.name, dict(span.attributes)))

    provider = app.state.kansoku.tracer_provider
    provider.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    provider.add_span_processor(Recorder())
    with serve_app(app) as base, httpx.Client(base_url=base) as client:
        sent = client.get("/hop", headers={"traceparent": f"00-{TRACE}-{SPAN}-01",
                                           "baggage": "tenant=acme,plan=gold"}).json()
    assert sent["baggage"] == {"tenant": "acme", "plan": "gold"}
    assert sorted(sent["headers"]["baggage"].split(",")) == ["plan=gold", "tenant=acme"]
    assert sent["headers"]["traceparent"].split("-")[1] == TRACE
    [server] = _stored_spans(app.state.kansoku)
    assert server["attributes"]["tenant"] == "acme" and server["attributes"]["plan"] == "gold"
    [(name, attributes)] = started
    assert name == "GET" and attributes["url.path"] == "/hop"  # request attributes readable at start


def test_per_signal_traces_endpoint_and_headers(instrumented: Any, serve_app: Serve, otlp_receiver: Any,
                                                monkeypatch: pytest.MonkeyPatch, poll: Any) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone sends spans there (as it is), with the SDK's headers
    variable applied; the local store gets none."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.url + "/custom/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=acme,authorization=Bearer%20t0k")
    app = instrumented()
    with serve_app(app) as base, httpx.Client(base_url=base) as client:
        assert client.get("/hop").status_code == 200
    assert _stored_spans(app.state.kansoku) == []
    paths = [(path, headers) for path, headers, _ in otlp_receiver.requests]
    assert [path for path, _ in paths] == ["/custom/traces"]
    assert paths[0][1]["x-tenant"] == "acme" and paths[0][1]["authorization"] == "Bearer t0k"


def test_sdk_disabled(instrumented: Any, serve_app: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true: no spans and no trace ids, the app serves as before."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    app = instrumented()
    assert app.state.kansoku.tracer_provider is None
    with capture_logs() as records, serve_app(app) as base, httpx.Client(base_url=base) as client:
        assert client.get("/hop").json()["headers"] == {}
    access = [r for r in records if r.get("logger") == "kansoku.access"]
    assert access and "trace_id" not in access[0]
    assert _stored_spans(app.state.kansoku) == []


@pytest.mark.parametrize(("name", "expected"), [
    ("always_on", ALWAYS_ON), ("always_off", ALWAYS_OFF), ("traceidratio", TraceIdRatioBased(0.25)),
    ("parentbased_always_on", ParentBased(ALWAYS_ON)), ("parentbased_always_off", ParentBased(ALWAYS_OFF)),
    ("parentbased_traceidratio", ParentBased(TraceIdRatioBased(0.25))),
])
def test_sampler_names(name: str, expected: Any) -> None:
    """Each OTEL_TRACES_SAMPLER name makes the SDK's sampler, with OTEL_TRACES_SAMPLER_ARG as the ratio."""
    sampler = build_sampler(load_settings(traces_sampler=name, trace_sample_rate=0.25))
    assert sampler.get_description() == expected.get_description()


def test_unknown_propagator_names_the_package() -> None:
    """A propagator that is not installed is a ConfigError with the pip command."""
    with pytest.raises(ConfigError, match="pip install opentelemetry-propagator-jaeger"):
        build_propagator(load_settings(propagators="tracecontext,jaeger"))


def test_exporter_targets() -> None:
    """The per-signal endpoint wins and is used as it is; the base one gets /v1/traces; none: nowhere."""
    assert span_exporter_target(load_settings()) is None  # the local store
    assert span_exporter_target(load_settings(otlp_endpoint="http://c:4318")) == ("otlp", "http://c:4318/v1/traces")
    assert span_exporter_target(load_settings(otlp_endpoint="http://c:4318", otlp_traces_endpoint="http://t/x")) == (
        "otlp", "http://t/x")
    assert span_exporter_target(load_settings(traces_exporter="otlp")) == ("otlp", None)
    assert span_exporter_target(load_settings(otlp_endpoint="http://c:4318", traces_exporter="none")) is None


def test_wsgi_requests_continue_the_configured_propagators(provider: Any) -> None:
    """A WSGI environ's X-B3-* (HTTP_X_B3_*) headers are continued like an ASGI request's."""
    from kansoku.tracing import RequestTracer

    tracer = RequestTracer(provider, load_settings(propagators="b3multi,baggage"))
    handle = tracer.start_wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "HTTP_X_B3_TRACEID": TRACE,
                                "HTTP_X_B3_SPANID": SPAN, "HTTP_X_B3_SAMPLED": "1", "HTTP_BAGGAGE": "k=v"})
    assert handle is not None
    assert (handle.trace_id, handle.parent.span_id if handle.parent else None) == (TRACE, int(SPAN, 16))
    assert baggage.get_all() == {"k": "v"}
    tracer.finish(handle, 200, "/x", None)
    assert baggage.get_all() == {}
