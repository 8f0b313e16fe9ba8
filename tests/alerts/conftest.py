"""Fixtures of the alerting tests: a real SQLite store, a settable clock, events, local receivers."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from kansoku.store import create_store_engine
from kansoku.store.tables import metadata
from kansoku.typing import ErrorChange, ErrorEvent

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15) so payloads can be asserted whole


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_engine(path: Path) -> Engine:
    """A store engine on a SQLite file with the schema created."""
    engine = create_store_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    return engine


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    """A real SQLite store in a temporary file."""
    engine = make_engine(tmp_path / "kansoku.db")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    """A clock at T0."""
    return Clock()


def event(group: str = "g1", *, severity: str = "critical", category: str = "application",
          message: str = "amount over limit", **extra: Any) -> ErrorEvent:
    """An error event as the tracker hands it to listeners."""
    data: dict[str, Any] = {
        "event_id": f"ev-{group}", "timestamp": T0, "exception_type": "ValueError", "message": message,
        "culprit": "shop.orders.create", "group_key": group, "severity": severity, "category": category,
        "service": "shop", "environment": "test", "release": "1.0", "tags": {}, **extra,
    }
    return data  # type: ignore[return-value]


def change(group: str = "g1", *, new: bool = False, regression: bool = False, count: int = 1,
           group_id: int = 7) -> ErrorChange:
    """What storing the event changed."""
    return ErrorChange(group_key=group, group_id=group_id, new=new, regression=regression, count=count,
                       status="unresolved")


@dataclass
class Received:
    """One request a local receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server that records requests and answers from a script."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    responses: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    default: tuple[int, dict[str, str], bytes] = (200, {"Content-Type": "text/plain"}, b"ok")
    delay: float = 0.0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"


def start_receiver(port: int = 0) -> Receiver:
    """Start a receiver on 127.0.0.1 (a free port unless given; stop with `stop_receiver`)."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            rec = holder["r"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            received = Received(self.command, self.path, headers, body)
            rec.requests.append(received)
            status, headers, payload = rec.responses.pop(0) if rec.responses else rec.default
            received.status = status
            if rec.delay:
                threading.Event().wait(rec.delay)
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        do_POST = do_GET = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    holder["r"] = receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return receiver


def stop_receiver(rec: Receiver) -> None:
    """Stop serving and close the listening socket (new connections are refused)."""
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running local HTTP receiver."""
    rec = start_receiver()
    yield rec
    stop_receiver(rec)


class Kit:
    """The helpers above, handed to tests as one fixture (test modules cannot import conftest)."""

    T0 = T0
    Clock = Clock
    event = staticmethod(event)
    change = staticmethod(change)
    make_engine = staticmethod(make_engine)
    start_receiver = staticmethod(start_receiver)
    stop_receiver = staticmethod(stop_receiver)


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Engine]:
    """A database of its own on the session's PostgreSQL server (other tests share the default one)."""
    name = f"kansoku_alerts_{os.getpid()}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_store_engine(postgres_url.rsplit("/", 1)[0] + "/" + name)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def kit() -> type[Kit]:
    """Helpers: kit.event(...), kit.change(...), kit.Clock, kit.start_receiver(), kit.T0."""
    return Kit
