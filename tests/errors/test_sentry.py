"""Sentry forwarding: stored events also reach a Sentry endpoint (a real local HTTP receiver)."""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kansoku.errors import ErrorTracker
from kansoku.errors.sentry import SentryForwarder, to_sentry_event
from kansoku.exceptions import ConfigError
from kansoku.settings import load_settings
from kansoku.testing import capture_logs


class Receiver(BaseHTTPRequestHandler):
    """Collects Sentry envelopes (POST /api/<project>/envelope/)."""

    envelopes: list[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        Receiver.envelopes.append([json.loads(line) for line in body.splitlines() if line.strip()])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_dsn() -> Iterator[str]:
    """A DSN pointing at a local receiver."""
    Receiver.envelopes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/42"
    server.shutdown()
    server.server_close()


def test_events_are_forwarded_redacted_with_kansokus_grouping(
        sentry_dsn: str, make_tracker: Callable[..., ErrorTracker]) -> None:
    """The Sentry event carries the exception, the redacted message and kansoku's group key."""
    tracker = make_tracker(sentry_dsn=sentry_dsn, version="3.0")
    try:
        raise ValueError("login failed password=hunter2")
    except ValueError as exc:
        event_id = tracker.capture(exc, tags={"feature": "login"})
    assert tracker.close(10)
    events = [item for envelope in Receiver.envelopes for item in envelope if item.get("event_id") == event_id
              and "exception" in item]
    assert len(events) == 1
    sent = events[0]
    value = sent["exception"]["values"][-1]
    assert (value["type"], value["value"]) == ("ValueError", "login failed password=[REDACTED]")
    assert value["mechanism"] == {"type": "manual", "handled": True}
    assert sent["fingerprint"][0] == "kansoku" and len(sent["fingerprint"][1]) == 64
    tags = sent["tags"]
    assert (sent["release"], tags["feature"], tags["kansoku.severity"]) == ("3.0", "login", "low")
    assert "hunter2" not in json.dumps(Receiver.envelopes)


def test_missing_sentry_sdk_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without sentry-sdk, a DSN is a ConfigError with the pip command."""
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # makes `import sentry_sdk` fail
    with pytest.raises(ConfigError, match=r"pip install 'kansoku\[sentry\]'"):
        SentryForwarder("http://k@127.0.0.1:9/1", settings=load_settings())


def _event(event_id: str, request: dict[str, Any] | None = None) -> Any:
    event: dict[str, Any] = {"event_id": event_id, "timestamp": 1_800_000_000.0, "group_key": "g" * 64,
                             "exceptions": [{"type": "ValueError", "message": "no", "frames": []}]}
    if request is not None:
        event["request"] = request
    return event


def test_the_request_fits_sentrys_request_interface() -> None:
    """An absolute URL and Sentry's own request fields; the route and the status go elsewhere."""
    sent = to_sentry_event(_event("e1", {
        "method": "POST", "route": "/orders/{order_id}", "url": "/orders/7?expand=items",
        "origin": "https://shop.example.com", "client": "10.0.0.1", "user_agent": "curl/8.5",
        "status_code": 502, "query": {"expand": "items"}, "body": {"qty": 2}, "headers": {"Accept": "*/*"}}))
    assert sent["request"] == {"url": "https://shop.example.com/orders/7", "method": "POST",
                               "query_string": "expand=items", "data": {"qty": 2},
                               "headers": {"Accept": "*/*", "User-Agent": "curl/8.5"},
                               "env": {"REMOTE_ADDR": "10.0.0.1"}}
    assert (sent["transaction"], sent["tags"]["http.route"]) == ("/orders/{order_id}", "/orders/{order_id}")
    assert sent["contexts"] == {"response": {"status_code": 502}}


def test_an_outage_is_one_line_down_and_one_back_and_the_lost_events_are_counted() -> None:
    """Sentry down: each event tried once, counted; one warning, then one info line once it answers."""
    Receiver.envelopes = []
    port = _closed_port()
    forwarder = SentryForwarder(f"http://publickey@127.0.0.1:{port}/42", settings=load_settings())
    with capture_logs() as logs:
        for i in range(5):
            forwarder.forward(_event(f"{i:032x}"))
        forwarder.flush(5)
        assert (forwarder.link.lost, forwarder.link.up) == (5, False)
        server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)  # Sentry is back
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            forwarder.forward(_event("f" * 32))
            forwarder.flush(5)
        finally:
            forwarder.close()
            server.shutdown()
            server.server_close()
    lines = [(r["level"], r["event"], r.get("not_sent")) for r in logs if r.get("target") == "sentry"]
    assert lines == [("warning", "sentry unreachable", None), ("info", "sentry reachable again", 5)]
    assert [item["event_id"] for env in Receiver.envelopes for item in env if "exception" in item] == ["f" * 32]
    assert (forwarder.link.lost, forwarder.link.up) == (5, True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the test uses it: nothing listens
