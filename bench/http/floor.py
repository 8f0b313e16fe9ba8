"""A yardstick, not a product: the issues' per-request work written as plainly as Python allows.

`FloorMiddleware` does what kansoku's middleware must do for each request and nothing else: read
or make a request id, echo it, bind it to the logging context, count the request by method, route
template and status, bucket its latency, and queue one JSON access line. Everything that makes
kansoku usable is left out: redaction, label bounds, locks, in-progress tracking, per-minute
statistics, exclusions, error handling, configuration, the service fields. With `span=True` it
also opens an OpenTelemetry SDK server span per request (current while the app runs, its ids on the
access line), the least the whole-stack target needs.

bench_http.py measures it beside kansoku in one run, so the distance between the targets and what
any pure ASGI middleware doing the same work costs on this machine is measured, not argued.
"""

from __future__ import annotations

import bisect
import collections
import re
import time
from random import getrandbits
from typing import Any

import orjson
from opentelemetry import context, trace

from kansoku.context import _CONTEXT

_VALID_ID = re.compile(rb"[A-Za-z0-9._:@/+=\-]{1,128}")
_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_LINES: collections.deque[bytes] = collections.deque(maxlen=10_000)  # stands in for stdout's queue


class FloorMiddleware:
    """Request id, context, RED counts and one JSON access line; optionally an SDK span."""

    def __init__(self, app: Any, *, span: bool = False) -> None:
        self.app = app
        self.counts: dict[tuple[str, str, int], int] = {}
        self.buckets = [0] * (len(_BOUNDS) + 1)
        self.tracer = _tracer() if span else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, wanted, user_agent = time.perf_counter(), None, ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                wanted = value
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")[:256]
        request_id = wanted.decode() if wanted and _VALID_ID.fullmatch(wanted) else f"{getrandbits(128):032x}"
        header = (b"x-request-id", request_id.encode())
        status = size = 0

        async def send_(message: Any) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            else:
                size += len(message.get("body", b""))
            await send(message)

        token = _CONTEXT.set({**_CONTEXT.get(), "request_id": request_id})
        span: Any = None
        otel_token: Any = None
        if self.tracer is not None:
            span = self.tracer.start_span(scope["method"], kind=trace.SpanKind.SERVER)
            otel_token = context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_)
        finally:
            duration = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "<unmatched>")
            key = (scope["method"], route, status)
            self.counts[key] = self.counts.get(key, 0) + 1
            self.buckets[bisect.bisect_left(_BOUNDS, duration)] += 1
            fields = {"timestamp": _timestamp(time.time()), "level": "info", "event": "request",
                      **_CONTEXT.get(), "method": scope["method"], "route": route, "path": scope["path"],
                      "status": status, "duration_ms": round(duration * 1e6) / 1000,
                      "response_size": size, "client": scope["client"][0], "user_agent": user_agent}
            if span is not None:
                span.set_attribute("http.route", route)
                span.end()
                context.detach(otel_token)
                ids = span.get_span_context()
                fields["trace_id"], fields["span_id"] = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
            _LINES.append(orjson.dumps(fields) + b"\n")
            _CONTEXT.reset(token)


def _timestamp(now: float) -> str:
    second = int(now)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(second))}.{int((now - second) * 1000):03d}Z"


def _tracer() -> Any:
    """An SDK tracer whose spans go through a batch processor to an exporter that drops them."""
    from collections.abc import Sequence

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    return provider.get_tracer("floor")
