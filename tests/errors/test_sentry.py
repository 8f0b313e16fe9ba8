"""Sentry forwarding: stored events also reach a Sentry endpoint (a real local HTTP receiver)."""

from __future__ import annotations

import gzip
import json
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kansoku.errors import ErrorTracker
from kansoku.errors.sentry import SentryForwarder
from kansoku.exceptions import ConfigError
from kansoku.settings import load_settings


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
