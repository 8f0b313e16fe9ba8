"""KansokuWSGIMiddleware in-process: the ASGI middleware's pillars, through PEP 3333."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kansoku import logs, set_route
from kansoku.runtime.wsgi import KansokuWSGIMiddleware
from kansoku.settings import load_settings
from kansoku.tracing import RequestTracer, configure_tracing

from .conftest import LightRuntime
from .wsgi_calls import call, environ

TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app naming its route as an adapter would, with its own status and header."""
    if environ["PATH_INFO"].startswith("/items/"):
        set_route("/items/{item_id}")
    logs.get_logger("app").info("in app")
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-App", "mine"), ("X-Request-ID", "app's")])
    return [b"hello ", b"world"]


def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise ValueError("wsgi app failed")


def error_page(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers 502 itself, as a framework's error page or a failed upstream does."""
    start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
    return [b"upstream failed"]


class Streamed:
    """A body that says when it is iterated and closed."""

    def __init__(self, seen: list[str], fail_at: int | None = None) -> None:
        self.seen, self.fail_at = seen, fail_at

    def __iter__(self) -> Iterator[bytes]:
        for index in range(3):
            if index == self.fail_at:
                raise RuntimeError("stream broke")
            self.seen.append(f"chunk {index}")
            logs.get_logger("app").info("streaming", index=index)
            yield b"x" * 10

    def close(self) -> None:
        self.seen.append("closed")


@pytest.fixture
def wrap(runtime: LightRuntime) -> Iterator[Any]:
    """Wrap an app in the middleware over the light runtime; its background loop stopped after."""
    made: list[KansokuWSGIMiddleware] = []

    def make(app: Any) -> KansokuWSGIMiddleware:
        made.append(KansokuWSGIMiddleware(app, runtime=runtime))
        return made[-1]

    yield make
    for middleware in made:
        middleware.close()


def test_request_id_route_metrics_and_access_line(wrap: Any, runtime: LightRuntime,
                                                   logged: list[dict[str, Any]]) -> None:
    """The app's answer unchanged but for one request id header; its route in metrics and the access line."""
    answer = call(wrap(hello), "/items/42", HTTP_X_REQUEST_ID="abc-123", HTTP_USER_AGENT="curl/8")
    assert (answer.code, answer.body) == (201, b"hello world")
    assert answer.headers == {"content-type": "text/plain", "x-app": "mine", "x-request-id": "abc-123"}
    assert runtime.value("http_requests_total", method="GET", route="/items/{item_id}", status="201") == 1
    in_app = [r for r in logged if r["event"] == "in app"]
    [access] = [r for r in logged if r["logger"] == "kansoku.access"]
    assert in_app[0]["request_id"] == access["request_id"] == "abc-123"
    assert {k: access[k] for k in ("method", "route", "path", "status", "response_size", "client", "user_agent")} == {
        "method": "GET", "route": "/items/{item_id}", "path": "/items/42", "status": 201, "response_size": 11,
        "client": "127.0.0.1", "user_agent": "curl/8"}


def test_invalid_request_id_is_replaced(wrap: Any) -> None:
    """An incoming id with a space or too long is replaced by a fresh 32-hex one."""
    for bad in ("has space", "x" * 200):
        answer = call(wrap(hello), "/", HTTP_X_REQUEST_ID=bad)
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])


def test_unhandled_exception_is_captured_and_answered_with_json_500(wrap: Any, runtime: LightRuntime,
                                                                     logged: list[dict[str, Any]]) -> None:
    """The JSON 500 with the event id; the exception captured with the request, and logged."""
    answer = call(wrap(failing), "/boom")
    assert answer.code == 500
    assert answer.body == b'{"error":"internal_server_error","event_id":"event-1"}'
    [captured] = runtime.captured
    assert isinstance(captured["exc"], ValueError) and captured["mechanism"] == "middleware"
    assert captured["request"]["url"] == "/boom" and captured["handled"] is False
    assert [r["event_id"] for r in logged if r["event"] == "unhandled exception"] == ["event-1"]
    assert runtime.value("http_requests_total", method="GET", route="<unmatched>", status="500") == 1


def test_streamed_body_is_recorded_when_closed(wrap: Any, runtime: LightRuntime,
                                               logged: list[dict[str, Any]]) -> None:
    """Chunks pass one by one in the request's context; the record is made after close()."""
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Streamed:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Streamed(seen)

    middleware = wrap(app)
    body = middleware(environ("/stream"), lambda status, headers, exc_info=None: None)
    chunks = iter(body)
    assert next(chunks) == b"x" * 10 and seen == ["chunk 0"]
    assert runtime.value("http_requests_total", method="GET", route="<unmatched>", status="200") is None
    rest = list(chunks)
    body.close()  # type: ignore[attr-defined]
    assert len(rest) == 2 and seen == ["chunk 0", "chunk 1", "chunk 2", "closed"]
    assert runtime.value("http_requests_total", method="GET", route="<unmatched>", status="200") == 1
    [access] = [r for r in logged if r["logger"] == "kansoku.access"]
    assert access["response_size"] == 30
    assert {r["request_id"] for r in logged if r["event"] == "streaming"} == {access["request_id"]}


def test_exception_while_streaming_is_captured_and_reraised(wrap: Any, runtime: LightRuntime) -> None:
    """The status is sent already: the error is recorded, re-raised to the server, the body still closed."""
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Streamed:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Streamed(seen, fail_at=1)

    with pytest.raises(RuntimeError, match="stream broke"):
        call(wrap(app), "/stream")
    assert seen == ["chunk 0", "closed"]
    assert [type(c["exc"]) for c in runtime.captured] == [RuntimeError]


def test_5xx_without_exception_is_an_event_by_route_and_status(wrap: Any, runtime: LightRuntime) -> None:
    """A 502 the app answered itself becomes one event, fingerprinted by method, route and status."""
    answer = call(wrap(error_page), "/proxy")
    assert (answer.code, answer.body) == (502, b"upstream failed")
    [captured] = runtime.captured
    assert str(captured["exc"]) == "GET <unmatched> answered 502"
    assert captured["fingerprint"] == ["http-status", "GET", "<unmatched>", "502"]
    assert captured["mechanism"] == "http-status"


def test_5xx_events_can_be_turned_off(make_runtime: Any) -> None:
    """capture_5xx_responses=false: a 502 is counted, not recorded as an event."""
    runtime = make_runtime(capture_5xx_responses=False)
    middleware = KansokuWSGIMiddleware(error_page, runtime=runtime)
    try:
        assert call(middleware, "/proxy").code == 502
    finally:
        middleware.close()
    assert runtime.captured == []


def test_own_endpoints(wrap: Any, make_runtime: Any) -> None:
    """/health, /ready and /metrics answered by kansoku; the app never sees them; HEAD has no body."""
    middleware = wrap(failing)
    assert call(middleware, "/health").body == b'{"status":"ok"}'
    assert call(middleware, "/ready").body == b'{"status":"ok","checks":{}}'
    assert call(middleware, "/health", "HEAD").body == b""
    metrics = call(middleware, "/metrics")
    assert metrics.code == 200 and b'route="/health"' not in metrics.body  # probes are not app traffic
    assert call(middleware, "/kansoku/api/errors").code == 404  # no web app in the light runtime


def test_metrics_token(make_runtime: Any) -> None:
    """/metrics with a token: 401 and a Bearer challenge without it, 200 with it."""
    middleware = KansokuWSGIMiddleware(hello, runtime=make_runtime(metrics_token="s3cret"))
    try:
        denied = call(middleware, "/metrics")
        allowed = call(middleware, "/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    finally:
        middleware.close()
    assert (denied.code, denied.headers["www-authenticate"]) == (401, 'Bearer realm="metrics"')
    assert allowed.code == 200


def test_server_span_continues_the_trace_and_ends_after_the_body(make_runtime: Any) -> None:
    """W3C traceparent continued; the span named by route ends only once the body is closed."""
    exporter = InMemorySpanExporter()
    provider = configure_tracing(load_settings(store_spans=False), None, "svc-test")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = make_runtime()
    runtime.request_tracer = RequestTracer(provider)
    middleware = KansokuWSGIMiddleware(hello, runtime=runtime)
    try:
        body = middleware(environ("/items/7", HTTP_TRACEPARENT=f"00-{TRACE}-{PARENT}-01"),
                          lambda status, headers, exc_info=None: None)
        assert list(body) == [b"hello ", b"world"] and exporter.get_finished_spans() == ()
        body.close()  # type: ignore[attr-defined]
    finally:
        middleware.close()
        provider.shutdown()
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT
    assert format(span.context.trace_id, "032x") == TRACE  # type: ignore[union-attr]
    assert dict(span.attributes or {})["http.response.status_code"] == 201


def test_file_wrapper_is_passed_to_the_server(wrap: Any, runtime: LightRuntime, tmp_path: Any) -> None:
    """A wsgi.file_wrapper body reaches the server as it is (for sendfile); its close() records it."""
    import wsgiref.util

    path = tmp_path / "file.bin"
    path.write_bytes(b"z" * 100)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "100")])
        return environ["wsgi.file_wrapper"](path.open("rb"))

    middleware = wrap(app)
    body = middleware(environ("/file", **{"wsgi.file_wrapper": wsgiref.util.FileWrapper}),
                      lambda status, headers, exc_info=None: None)
    assert isinstance(body, wsgiref.util.FileWrapper)
    assert b"".join(body) == b"z" * 100
    body.close()
    assert runtime.value("http_response_size_bytes_sum", method="GET", route="<unmatched>") == 100
