"""Every span kansoku stores or exports passes the redactor: names, attributes, events, links, status, UA."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, Status, StatusCode

from kansoku import tracing
from kansoku.redact import Redactor
from kansoku.settings import load_settings
from kansoku.store import create_store_engine
from kansoku.store.tables import metadata
from kansoku.tracing import RequestTracer, configure_tracing
from kansoku.tracing._redacting import redact_span

from .test_otlp import Received, receiver  # noqa: F401 - the OTLP receiver fixture

CARD = "4111111111111111"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
STRIPE = "sk_live_" + "51HxQz9T8c7R6a5B4n3M2k1J"
PASSWORD = "Tr0ub4dor-and-3"
SECRETS = (CARD, GITHUB, STRIPE, PASSWORD)
CTX = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=False)


def _leaks(blob: str | bytes) -> list[str]:
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    return [secret for secret in SECRETS if secret in text]


def test_redact_span_masks_name_attributes_events_links_and_status() -> None:
    """A span's name, attributes (lists too), events, links and status message lose their secrets."""
    span = ReadableSpan(
        name=f"charge {CARD}", context=CTX,
        attributes={"note": f"card {CARD}", "db.password": PASSWORD, "tags": ("ok", GITHUB), "order_id": CARD,
                    "http.response.status_code": 200, "amount": 12.5},
        events=[Event("retry", {"detail": f"key={STRIPE}"}, 1)],
        links=[Link(CTX, {"why": f"token {GITHUB}"})],
        status=Status(StatusCode.ERROR, f"declined: password={PASSWORD}"),
    )
    clean = redact_span(span, Redactor())
    assert clean.name == "charge [REDACTED CARD]"
    assert dict(clean.attributes or {}) == {
        "note": "card [REDACTED CARD]", "db.password": "[REDACTED]", "tags": ("ok", "[REDACTED]"),
        "order_id": CARD, "http.response.status_code": 200, "amount": 12.5}  # an id key keeps its number
    assert dict(clean.events[0].attributes or {}) == {"detail": "key=[REDACTED]"}
    assert dict(clean.links[0].attributes or {}) == {"why": "token [REDACTED]"}
    assert clean.status.description == "declined: password=[REDACTED]"
    assert (clean.context, clean.start_time) == (span.context, span.start_time)


def test_a_clean_span_is_handed_on_as_it_is() -> None:
    """Nothing to redact: no copy is made."""
    span = ReadableSpan(name="GET /orders/{id}", context=CTX, attributes={"url.path": "/orders/7", "n": 3},
                        events=[Event("cache miss", {"key": "orders:7"}, 1)])
    assert redact_span(span, Redactor()) is span


def _request_scope(agent: bytes) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/orders/7", "scheme": "http", "http_version": "1.1",
            "client": ("10.1.2.3", 40000), "headers": [(b"host", b"shop.local"), (b"user-agent", agent)]}


def _app_spans(provider: Any) -> None:
    """A request whose User-Agent carries a token, with the app's own span and attributes inside."""
    request_tracer = RequestTracer(provider, load_settings())
    handle = request_tracer.start(_request_scope(f"curl/8.0 (token {GITHUB})".encode()))
    with provider.get_tracer("shop").start_as_current_span(f"pay {CARD}") as span:
        span.set_attribute("payment.note", f"card {CARD} key {STRIPE}")
        span.set_attribute("user.password", PASSWORD)
        span.add_event("charged", {"card": CARD})
    request_tracer.finish(handle, 200, "/orders/{order_id}", None)


def test_spans_reach_the_sqlite_store_redacted(tmp_path: Path) -> None:
    """The app's attributes, span names, events and the User-Agent are redacted in the raw database files."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'k.db'}")
    metadata.create_all(engine)
    provider = configure_tracing(load_settings(service_name="shop"), engine)
    _app_spans(provider)
    assert provider.force_flush(5000)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())  # the db, its WAL and shm
    assert b"curl/8.0 (token [REDACTED])" in raw and b"pay [REDACTED CARD]" in raw
    assert _leaks(raw) == []
    provider.shutdown()
    engine.dispose()


def test_spans_reach_an_otlp_receiver_redacted(receiver: tuple[str, Received]) -> None:  # noqa: F811
    """Over OTLP/HTTP too: the receiver decodes no secret in any name or attribute."""
    base_url, received = receiver
    provider = configure_tracing(load_settings(otlp_endpoint=base_url, service_name="shop"), None)
    _app_spans(provider)
    assert provider.force_flush(10_000)
    provider.shutdown()
    by_name = {span["name"]: span for span in received.spans}
    assert set(by_name) == {"GET /orders/{order_id}", "pay [REDACTED CARD]"}
    assert by_name["GET /orders/{order_id}"]["attributes"]["user_agent.original"] == "curl/8.0 (token [REDACTED])"
    assert by_name["pay [REDACTED CARD]"]["attributes"] == {
        "payment.note": "card [REDACTED CARD] key [REDACTED]", "user.password": "[REDACTED]"}
    assert _leaks(repr(received.spans)) == []


@pytest.fixture
def echo_url() -> Iterator[str]:
    """A local HTTP server answering 200 to every GET."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_third_party_instrumentation_query_strings_are_redacted(tmp_path: Path, echo_url: str) -> None:
    """httpx's own client span keeps its URL, with the query's secrets masked and the rest intact."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'k.db'}")
    metadata.create_all(engine)
    provider = configure_tracing(load_settings(service_name="shop", instrument_httpx=True), engine)
    with provider.get_tracer("shop").start_as_current_span("sync"), httpx.Client() as client:
        client.get(f"{echo_url}/stock?api_key={STRIPE}&sku=AB-12&password={PASSWORD}")
    assert provider.force_flush(5000)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"/stock?api_key=[REDACTED]&sku=AB-12&password=[REDACTED]" in raw
    assert _leaks(raw) == []
    tracing.uninstrument_libraries()
    provider.shutdown()
    engine.dispose()
