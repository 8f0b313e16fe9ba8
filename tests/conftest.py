"""Fixtures shared by every test: strict mode, a throwaway PostgreSQL server, free ports, a webhook receiver."""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import uvicorn

from kansoku import _safety


@pytest.fixture(autouse=True)
def _strict_internal_errors() -> Iterator[None]:
    """kansoku's internal errors raise in tests instead of being reported and swallowed."""
    _safety.set_strict(True)
    yield
    _safety.set_strict(False)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    """A free port on 127.0.0.1."""
    return free_port()


def _pg_bindir() -> str:
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
    if out.returncode == 0:
        return out.stdout.strip()
    initdb = shutil.which("initdb")
    if initdb is not None:
        return os.path.dirname(os.path.realpath(initdb))
    installed = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/initdb"))  # Debian's layout
    if not installed:
        raise RuntimeError("PostgreSQL server binaries are missing: run scripts/install-system-deps")
    return str(installed[-1].parent)


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (started as an unprivileged user under root)."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.port = free_port()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="kansoku-pg."))
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            user = "pgci"
            try:
                pwd.getpwnam(user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                               check=True)
            shutil.chown(self.tmp, user)
            self.prefix = ["runuser", "-u", user, "--"]
        self.data = self.tmp / "data"
        subprocess.run([*self.prefix, f"{self.bindir}/initdb", "-D", str(self.data), "-U", "postgres", "-A",
                        "trust", "-E", "UTF8", "--locale=C", "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        self.start()
        subprocess.run([f"{self.bindir}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "kansoku"], check=True)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `kansoku` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/kansoku"

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        subprocess.run([*self.prefix, f"{self.bindir}/pg_ctl", "-D", str(self.data), "-l",
                        str(self.tmp / "server.log"), "-w", "-t", "30", "-o",
                        f"-h 127.0.0.1 -p {self.port} -k {self.tmp} -F -c max_connections=200", "start"],
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        """Stop the server (fast shutdown); data stays for a restart."""
        subprocess.run([*self.prefix, f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w",
                        "stop"], check=False, stdout=subprocess.DEVNULL)

    def destroy(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """The SQLAlchemy URL of the session's PostgreSQL database."""
    return postgres.url


class RedisServer:
    """Debian's redis-server on a free 127.0.0.1 port, no persistence, stopped by its pid."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run scripts/install-system-deps")
        self.port = free_port()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="kansoku-redis."))
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp), "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=20.0)

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole session (flush its databases between tests that share it)."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve `app` (lifespan included) on a free 127.0.0.1 port; yields the base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture(scope="session")
def serve_app() -> Callable[[Any], AbstractContextManager[str]]:
    """`with serve_app(app) as base_url:` runs the app on a real server for the block."""
    return served


class OtlpReceiver:
    """An OTLP/HTTP receiver on 127.0.0.1 that decodes the protobuf of traces, metrics and logs."""

    def __init__(self) -> None:
        import gzip
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        kinds: dict[str, tuple[Any, Any]] = {
            "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
            "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                            metrics_service_pb2.ExportMetricsServiceResponse),
            "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
        }
        self.requests: list[tuple[str, dict[str, str], Any]] = []  # (path, headers, decoded request)
        self.status = 200  # what to answer (a test can make the receiver fail)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                path = self.path.split("?")[0]
                request_type, response_type = kinds.get(path, kinds["/v1/traces"])
                receiver.requests.append((path, {k.lower(): v for k, v in self.headers.items()},
                                          request_type.FromString(body)))
                out = response_type().SerializeToString()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The base URL (append /v1/traces, /v1/metrics, /v1/logs)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def of(self, path: str) -> list[Any]:
        """The decoded requests that came to `path`."""
        return [request for p, _, request in self.requests if p == path]

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, as {name, trace_id, span_id, parent_span_id, attributes, service}."""
        found = []
        for request in self.of("/v1/traces"):
            for resource_spans in request.resource_spans:
                resource = {a.key: any_value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append({"name": span.name, "trace_id": span.trace_id.hex(),
                                      "span_id": span.span_id.hex(), "parent_span_id": span.parent_span_id.hex(),
                                      "kind": span.kind, "service": resource.get("service.name"),
                                      "scope": scope_spans.scope.name,
                                      "attributes": {a.key: any_value(a.value) for a in span.attributes}})
        return found

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


def any_value(value: Any) -> Any:
    """The Python value of an OTLP AnyValue."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A running OTLP/HTTP protobuf receiver (traces, metrics, logs)."""
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {getattr(check, '__name__', check)}")
        time.sleep(interval)


@pytest.fixture
def poll() -> Callable[..., Any]:
    """`poll(check, timeout=20)`: wait until `check()` is truthy and return it (never a bare sleep)."""
    return wait_for


class Hooks:
    """A local webhook receiver: the JSON bodies it got, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hooks.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def kinds(self) -> list[str]:
        return [body["kind"] for body in self.bodies]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    """A running webhook receiver."""
    made = Hooks()
    yield made
    made.server.shutdown()
    made.server.server_close()
