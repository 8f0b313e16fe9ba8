"""Benchmark of `kansoku server`: spans/s and events/s accepted and stored by one server process.

    .venv/bin/python bench/ingest/bench_ingest.py                 # SQLite, PostgreSQL, arize-phoenix
    .venv/bin/python bench/ingest/bench_ingest.py --no-postgres --phoenix PATH/TO/phoenix

One run, the same payloads for every backend:

- spans: OTLP/HTTP protobuf export requests of 50 spans each (one trace per request, a server
  span and its children, a few attributes), made once with opentelemetry-proto, posted by 4
  concurrent clients to `/v1/traces`;
- events: Sentry envelopes of one error event each (a 3-frame stack), to kansoku only (phoenix
  takes no Sentry events).

Backends, each a fresh process on 127.0.0.1 with its own store: `kansoku server` on SQLite, on
PostgreSQL (the tests' throwaway cluster), and arize-phoenix (`phoenix serve`, its SQLite store), a
real OTLP backend from PyPI (install it in a venv of its own: it pins many packages; pass its
`phoenix` script with --phoenix). "accepted/s": records answered 2xx per second of sending;
"stored/s": records per second from the first request until every one is in the store (counted
in the backend's own database). With two CPUs or more the server runs on CPU 0 and the clients on
the others (taskset). Results: printed, and bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

ROOT = Path(__file__).resolve().parents[2]
KANSOKU = Path(sys.executable).with_name("kansoku")
SPANS_PER_REQUEST = 50
CLIENTS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kv(key: str, value: str | int) -> KeyValue:
    any_value = AnyValue(string_value=value) if isinstance(value, str) else AnyValue(int_value=value)
    return KeyValue(key=key, value=any_value)


def span_requests(n: int, seed: int = 7) -> list[bytes]:
    """`n` export requests of SPANS_PER_REQUEST spans (one trace each), protobuf-encoded."""
    rng = random.Random(seed)
    out = []
    start = time.time_ns() - 60_000_000_000
    for i in range(n):
        trace_id = rng.randbytes(16)
        root_id = rng.randbytes(8)
        spans = [Span(trace_id=trace_id, span_id=root_id, name="GET /orders/{id}", kind=Span.SPAN_KIND_SERVER,
                      start_time_unix_nano=start + i * 1000, end_time_unix_nano=start + i * 1000 + 5_000_000,
                      attributes=[_kv("http.route", "/orders/{id}"), _kv("http.response.status_code", 200)])]
        for j in range(SPANS_PER_REQUEST - 1):
            began = start + i * 1000 + j
            spans.append(Span(trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=root_id,
                              name="SELECT orders", kind=Span.SPAN_KIND_CLIENT,
                              start_time_unix_nano=began, end_time_unix_nano=began + 90_000,
                              attributes=[_kv("db.system", "postgresql"), _kv("db.statement", "SELECT * FROM orders")]))
        resource = Resource(attributes=[_kv("service.name", "bench-api")])
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource=resource, scope_spans=[ScopeSpans(spans=spans)])])
        out.append(request.SerializeToString())
    return out


def envelopes(n: int) -> list[bytes]:
    """`n` Sentry envelopes of one error event each (distinct ids, one group)."""
    out = []
    for i in range(n):
        event = json.dumps({"event_id": f"{i:032x}", "level": "error", "release": "api@1.0", "exception": {"values": [
            {"type": "ValueError", "value": f"order {i} over limit", "stacktrace": {"frames": [
                {"module": "app.main", "function": "handle", "in_app": True, "lineno": 10},
                {"module": "app.orders", "function": "create", "in_app": True, "lineno": 42},
                {"module": "app.orders", "function": "check_limit", "in_app": True, "lineno": 57}]}}]}}).encode()
        out.append(b"{}\n" + json.dumps({"type": "event", "length": len(event)}).encode() + b"\n" + event)
    return out


def post_all(url: str, bodies: list[bytes], headers: dict[str, str]) -> tuple[float, int]:
    """POST every body with CLIENTS concurrent clients; (seconds, 2xx answers)."""
    items = iter(bodies)
    ok = [0] * CLIENTS
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(timeout=60, headers=headers) as http:
            while True:
                with lock:
                    body = next(items, None)
                if body is None:
                    return
                answer = http.post(url, content=body)
                if answer.is_success:
                    ok[index] += 1
                else:
                    print(f"  {answer.status_code}: {answer.text[:200]}", file=sys.stderr)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, sum(ok)


def _pin() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def _pin_self() -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))


class Proc:
    """A server process in its own session, stopped with SIGINT (then SIGKILL)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("wb") as out:
            self.proc = subprocess.Popen([*_pin(), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.log = log

    def wait_http(self, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(url, timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_count(count: Callable[[], int], target: int, timeout: float = 300) -> float:
    """Poll `count()` until it reaches `target`; the time that took."""
    began = time.perf_counter()
    while count() < target:
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"only {count()} of {target} stored after {timeout} s")
        time.sleep(0.05)
    return time.perf_counter() - began


def _sql_count(url: str, table: str) -> Callable[[], int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608 - constant

    return count


def bench_kansoku(url: str, spans: list[bytes], events: list[bytes], work: Path) -> dict[str, Any]:
    """kansoku server on the store at `url`: spans/s and events/s, accepted and stored."""
    from kansoku.settings import load_settings
    from kansoku.store import Store, migrations
    from kansoku.store.projects import create_project

    migrations.upgrade(url)
    store = Store.open(load_settings(database_url=url))
    project = create_project(store.engine, "bench")
    store.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KANSOKU_", "OTEL_"))}
    env.update(KANSOKU_DATABASE_URL=url, KANSOKU_LOG_LEVEL="WARNING", KANSOKU_MAX_EVENTS_PER_GROUP="1000000")
    server = Proc([str(KANSOKU), "server", "--port", str(port)], env, work / "kansoku.log")
    base = f"http://127.0.0.1:{port}"
    try:
        server.wait_http(f"{base}/health")
        out: dict[str, Any] = {}
        for name, bodies, path, headers, table, per in (
                ("spans", spans, "/v1/traces", {"Authorization": f"Bearer {project.key}",
                                                 "Content-Type": "application/x-protobuf"}, "kansoku_spans",
                 SPANS_PER_REQUEST),
                ("events", events, f"/api/{project.id}/envelope/?sentry_key={project.key}", {},
                 "kansoku_error_events", 1)):
            count = _sql_count(url, table)
            began = time.perf_counter()
            seconds, ok = post_all(base + path, bodies, headers)
            stored = wait_count(count, ok * per)
            total = time.perf_counter() - began
            out[name] = {"records": ok * per, "accepted_per_s": ok * per / seconds,
                         "stored_per_s": ok * per / max(total, stored)}
        return out
    finally:
        server.stop()


def bench_phoenix(phoenix: str, spans: list[bytes], work: Path) -> dict[str, Any]:
    """arize-phoenix (`phoenix serve`) on its own SQLite store: spans/s accepted and stored."""
    port, grpc = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
    env.update(PHOENIX_PORT=str(port), PHOENIX_GRPC_PORT=str(grpc), PHOENIX_HOST="127.0.0.1",
               PHOENIX_WORKING_DIR=str(work / "phoenix"), PHOENIX_TELEMETRY_ENABLED="false")
    server = Proc([phoenix, "serve"], env, work / "phoenix.log")
    base = f"http://127.0.0.1:{port}"
    try:
        server.wait_http(f"{base}/healthz", timeout=180)
        database = work / "phoenix" / "phoenix.db"

        def count() -> int:
            with sqlite3.connect(database) as conn:
                return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])

        began = time.perf_counter()
        seconds, ok = post_all(f"{base}/v1/traces", spans, {"Content-Type": "application/x-protobuf"})
        stored = wait_count(count, ok * SPANS_PER_REQUEST)
        total = time.perf_counter() - began
        n = ok * SPANS_PER_REQUEST
        return {"spans": {"records": n, "accepted_per_s": n / seconds, "stored_per_s": n / max(total, stored)}}
    finally:
        server.stop()


def _postgres() -> tuple[Any, str]:
    spec = importlib.util.spec_from_file_location("kansoku_tests_conftest", ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = module.PostgresServer()
    return server, server.url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="span export requests (x50 spans)")
    parser.add_argument("--events", type=int, default=5000, help="Sentry envelopes (one event each)")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--phoenix", metavar="PATH", default=shutil.which("phoenix"),
                        help="the `phoenix` script of an arize-phoenix install (default: on PATH)")
    args = parser.parse_args()
    _pin_self()
    spans, events = span_requests(args.requests), envelopes(args.events)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kansoku-bench-ingest-") as tmp:
        work = Path(tmp)
        (work / "sqlite").mkdir()
        results["kansoku-sqlite"] = bench_kansoku(f"sqlite:///{work / 'sqlite' / 'k.db'}", spans, events,
                                                  work / "sqlite")
        if not args.no_postgres:
            pg, url = _postgres()
            try:
                (work / "pg").mkdir()
                results["kansoku-postgresql"] = bench_kansoku(url, spans, events, work / "pg")
            finally:
                pg.destroy()
        if args.phoenix:
            (work / "phx").mkdir()
            results["arize-phoenix"] = bench_phoenix(args.phoenix, spans, work / "phx")
        else:
            print("arize-phoenix not found: pass --phoenix PATH (see the docstring)", file=sys.stderr)
    print(f"\n{'backend':<20} {'signal':<7} {'records':>8} {'accepted/s':>11} {'stored/s':>9}")
    for backend, signals in results.items():
        for name, row in signals.items():
            print(f"{backend:<20} {name:<7} {row['records']:>8} {row['accepted_per_s']:>11.0f} "
                  f"{row['stored_per_s']:>9.0f}")
    if "arize-phoenix" in results:
        base = results["arize-phoenix"]["spans"]["stored_per_s"]
        for backend in ("kansoku-sqlite", "kansoku-postgresql"):
            if backend in results:
                print(f"{backend} stores spans {results[backend]['spans']['stored_per_s'] / base:.2f}x "
                      "as fast as arize-phoenix")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
