"""What redaction costs a span on export: `redact_span` beside the store's own work per span.

Runs in the BatchSpanProcessor's thread, never on the request path. Prints the best of five
rounds (other load on the machine only ever adds time), µs per span, for a server span with the
HTTP semantic-convention attributes (a unique path per span, then repeated values), and for the
store's `span_row` + JSON encoding of the same spans as the yardstick.

    python bench/redaction/bench_redaction.py
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from kansoku.redact import Redactor
from kansoku.tracing._redacting import redact_span
from kansoku.tracing._span_store import _driver_row, span_row

CTX = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=False)
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def server_span(i: int) -> ReadableSpan:
    """A finished server span as kansoku's middleware makes it."""
    return ReadableSpan(name="GET /orders/{order_id}", context=CTX, kind=SpanKind.SERVER, attributes={
        "http.request.method": "GET", "url.path": f"/orders/{i}", "url.scheme": "http",
        "network.protocol.version": "1.1", "client.address": "10.1.2.3", "server.address": "shop.internal",
        "server.port": 8000, "user_agent.original": AGENT, "http.response.status_code": 200,
        "http.route": "/orders/{order_id}"})


def best(work: Callable[[], object], count: int) -> float:
    """µs per item, best of five rounds."""
    return min(timeit.repeat(work, number=1, repeat=5)) / count * 1e6


def main() -> None:
    redactor = Redactor()
    unique = [server_span(i) for i in range(5000)]
    same = [server_span(1) for _ in range(5000)]
    rows = {
        "redact_span, a unique path per span": best(lambda: [redact_span(s, redactor) for s in unique], 5000),
        "redact_span, repeated values": best(lambda: [redact_span(s, redactor) for s in same], 5000),
        "span_row + JSON (the store's own work)": best(lambda: [_driver_row(span_row(s)) for s in unique], 5000),
    }
    for name, micros in rows.items():
        print(f"{name:<42} {micros:8.1f} µs/span")


if __name__ == "__main__":
    main()
