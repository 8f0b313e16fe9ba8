"""Benchmark of error capture: the cost of a failing request, and events per second into the store.

    .venv/bin/python bench/errors/bench_errors.py            # everything (starts a throwaway PostgreSQL)
    .venv/bin/python bench/errors/bench_errors.py --no-postgres

1. One failing FastAPI request, driven in-process through ASGI (no sockets): the bare app, the app
   with sentry-sdk (default integrations, a transport that drops: no network), the app with
   kansoku's capture path (ErrorTracker.capture from a pure ASGI wrapper, writing to SQLite in its
   worker thread, in the same process), kansoku as a user gets it (`kansoku.instrument(app)`:
   the event, the span's exception event at 100% sampling, the JSON error and access lines to
   stdout, metrics; lifespan started, SQLite store), and the peer stack (sentry-sdk, asgi-correlation-id,
   prometheus-fastapi-instrumentator, OpenTelemetry's FastAPI instrumentation). Each variant runs
   in a fresh subprocess, because sentry-sdk and OpenTelemetry patch classes process-wide.
2. Events per second into SQLite and PostgreSQL: the whole pipeline (capture, then the worker
   prepares and writes batches) until everything is flushed, and the store writer alone.

Results are printed and written to bench/results/errors.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REQUESTS, WARMUP = 3000, 300
VARIANTS = ("bare", "sentry", "kansoku", "instrument", "peers")


# --- 1. one failing request -----------------------------------------------------------------------

def _fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    counter = iter(range(10**9))

    @app.get("/orders/{order_id}")
    async def create_order(order_id: int) -> dict[str, int]:
        raise ValueError(f"order {order_id} over limit ({next(counter)})")

    return app


class _KansokuCapture:
    """What the middleware does on an exception: capture (request info, unhandled), re-raise."""

    def __init__(self, app: Any, tracker: Any) -> None:
        self.app, self.tracker = app, tracker

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.tracker.capture(exc, request={"method": scope["method"], "route": "/orders/{order_id}",
                                               "url": scope["path"]}, mechanism="middleware", handled=False)
            raise


def _build(variant: str, workdir: Path) -> tuple[Any, Any]:
    """The ASGI app of a variant, and what to close after the run."""
    if variant in ("sentry", "peers"):
        import sentry_sdk
        from sentry_sdk.transport import Transport

        class DropTransport(Transport):
            def capture_envelope(self, envelope: Any) -> None:
                pass

        sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", transport=DropTransport)
    app = _fastapi_app()
    if variant == "peers":
        from asgi_correlation_id import CorrelationIdMiddleware
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from prometheus_fastapi_instrumentator import Instrumentator

        app.add_middleware(CorrelationIdMiddleware)
        Instrumentator().instrument(app)
        FastAPIInstrumentor.instrument_app(app)
    if variant == "instrument":
        import kansoku

        app = kansoku.instrument(app, database_url=f"sqlite:///{workdir / 'k.db'}", service_name="bench",
                                 log_format="json", trace_sample_rate=1.0, queue_size=100_000)
        return app, kansoku.runtime.current()
    if variant == "kansoku":
        from kansoku.errors import ErrorTracker
        from kansoku.settings import load_settings
        from kansoku.store import Store

        settings = load_settings(database_url=f"sqlite:///{workdir / 'k.db'}", service_name="bench",
                                 queue_size=100_000)
        store = Store.open(settings)
        tracker = ErrorTracker(settings, store.engine)
        tracker.start()
        return _KansokuCapture(app, tracker), tracker
    return app, None


async def _drive(app: Any, n: int) -> list[int]:
    """Call the app n times through ASGI; nanoseconds per failing request."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    times = []
    for i in range(n):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": f"/orders/{i}", "raw_path": f"/orders/{i}".encode(),
                 "query_string": b"", "root_path": "", "headers": [(b"host", b"bench")],
                 "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {}}
        start = time.perf_counter_ns()
        try:
            await app(scope, receive, send)
        except Exception:  # noqa: S110 - the server's job: the 500 was sent, the error is re-raised
            pass
        times.append(time.perf_counter_ns() - start)
        sent.clear()
    return times


async def _serve(app: Any, n: int, lifespan: bool) -> list[int]:
    """`_drive` inside the app's lifespan (started and stopped) when `lifespan`."""
    if not lifespan:
        return await _drive(app, n)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   inbox.get, replies.put))
    await inbox.put({"type": "lifespan.startup"})
    await replies.get()
    try:
        return await _drive(app, n)
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await replies.get()
        await task


def run_variant(variant: str) -> dict[str, Any]:
    """(In a subprocess.) Median, mean and p95 of one failing request, in microseconds."""
    with tempfile.TemporaryDirectory() as tmp:
        app, closer = _build(variant, Path(tmp))
        lifespan = variant == "instrument"
        asyncio.run(_serve(app, WARMUP, lifespan))
        times = asyncio.run(_serve(app, REQUESTS, lifespan))
        result: dict[str, Any] = {}
        if variant == "instrument":
            result["tracker"] = closer.errors.stats()
        elif closer is not None:
            start = time.perf_counter()
            closer.close(timeout=60)
            result["flush_s"] = round(time.perf_counter() - start, 3)
            result["tracker"] = closer.stats()
    us = sorted(t / 1000 for t in times)
    result.update(median_us=round(statistics.median(us), 1), mean_us=round(statistics.fmean(us), 1),
                  p95_us=round(us[int(len(us) * 0.95)], 1))
    return result


def failing_request_costs(rounds: int) -> dict[str, Any]:
    """Every variant in its own interpreter, `rounds` times interleaved; the median of each figure."""
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    errors: dict[str, str] = {}
    for _ in range(rounds):
        for variant in VARIANTS:
            done = subprocess.run([sys.executable, __file__, "--variant", variant], capture_output=True,
                                  text=True, check=False, cwd=ROOT)
            if done.returncode != 0:
                errors[variant] = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
                continue
            runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {}
    for variant, results in runs.items():
        if not results:
            out[variant] = {"error": errors.get(variant, "no result")}
            continue
        figures = ("median_us", "mean_us", "p95_us")
        out[variant] = {k: statistics.median(r[k] for r in results) for k in figures}
        out[variant]["rounds"] = len(results)
    bare = out["bare"]
    for data in out.values():
        if "median_us" in data and "median_us" in bare:
            data["added_median_us"] = round(data["median_us"] - bare["median_us"], 1)
            data["added_mean_us"] = round(data["mean_us"] - bare["mean_us"], 1)
    return out


# --- 2. events per second -------------------------------------------------------------------------

def _lookup(user: int) -> None:
    raise KeyError(f"user {user} not found")


def pipeline_rate(url: str, n: int) -> dict[str, Any]:
    """Raise and capture n errors (20 groups, 100 users), then flush: events/s through everything."""
    from kansoku.errors import ErrorTracker
    from kansoku.settings import load_settings
    from kansoku.store import Store

    settings = load_settings(database_url=url, service_name="bench", queue_size=n + 10,
                             max_events_per_group=n + 10)
    store = Store.open(settings, migrate=True)
    tracker = ErrorTracker(settings, store.engine)
    tracker.start()
    start = time.perf_counter()
    for i in range(n):
        try:
            _lookup(i)
        except KeyError as exc:
            tracker.capture(exc, fingerprint=[f"site-{i % 20}"], user={"id": f"u{i % 100}"})
    captured = time.perf_counter()
    assert tracker.close(timeout=300)
    done = time.perf_counter()
    stats = tracker.stats()
    store.close()
    assert stats["stored"] == n, stats
    return {"events": n, "events_per_s": round(n / (done - start)),
            "capture_us": round((captured - start) / n * 1e6, 1)}


def writer_rate(url: str, n: int) -> dict[str, Any]:
    """The store writer alone, on prepared events in batches of 500."""
    from kansoku.settings import load_settings
    from kansoku.store import Store
    from kansoku.store.writer import EventWriter

    store = Store.open(load_settings(database_url=url), migrate=True)
    writer = EventWriter(store.engine, max_events_per_group=n + 10)
    events = [_prepared(i) for i in range(n)]
    start = time.perf_counter()
    for i in range(0, n, 500):
        writer.write(events[i:i + 500])
    elapsed = time.perf_counter() - start
    store.close()
    return {"events": n, "events_per_s": round(n / elapsed)}


def _prepared(i: int) -> Any:
    from kansoku.errors.fingerprint import group_key

    frames = [{"filename": "app/orders.py", "abs_path": "/srv/app/orders.py", "module": "app.orders",
               "function": f"step_{k}", "lineno": 10 + k, "in_app": True, "context_line": "    charge(order)",
               "pre_context": ["", "def step():", "    order = load()"], "post_context": ["", "", ""]}
              for k in range(8)]
    key = group_key("bench", "development", [f"custom:site-{i % 20}"])
    return {"event_id": f"{i:032x}", "timestamp": time.time(), "exception_type": "KeyError",
            "message": f"user {i} not found", "title": "KeyError: user not found", "group_key": key,
            "fingerprint_parts": [f"custom:site-{i % 20}"], "severity": "low", "category": "application",
            "service": "bench", "environment": "development", "culprit": "app.orders.step_7",
            "user": {"id": f"u{i % 100}"},
            "exceptions": [{"type": "KeyError", "message": "x", "frames": frames}]}


def _postgres() -> tuple[Any, str]:
    """A throwaway PostgreSQL server (the tests' PostgresServer) and a database URL on it."""
    spec = importlib.util.spec_from_file_location("kansoku_tests_conftest", ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = module.PostgresServer()
    return server, server.url


def store_rates(use_postgres: bool, n: int) -> dict[str, Any]:
    """Events per second into SQLite and (when asked) PostgreSQL."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = {"pipeline": pipeline_rate(f"sqlite:///{tmp}/p.db", n),
                         "writer": writer_rate(f"sqlite:///{tmp}/w.db", n)}
    if use_postgres:
        server, url = _postgres()
        try:
            out["postgresql"] = {"pipeline": pipeline_rate(url, n)}
            import psycopg

            admin = url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE DATABASE writer")
            out["postgresql"]["writer"] = writer_rate(url.rsplit("/", 1)[0] + "/writer", n)
        finally:
            server.destroy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--events", type=int, default=20_000, help="events for the store rates")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each variant")
    parser.add_argument("--requests-only", action="store_true", help="only the failing request (part 1)")
    args = parser.parse_args()
    if args.variant:
        # The result goes to the real stdout; the variant's own output (kansoku's log lines) to /dev/null.
        result_fd = os.dup(1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        result = run_variant(args.variant)
        os.write(result_fd, (json.dumps(result) + "\n").encode())
        return
    requests = failing_request_costs(args.rounds)
    sentry = requests["sentry"]
    ratios = {  # the target: at least 20
        f"sentry_over_{name}_{k}": round(sentry[f"added_{k}_us"] / max(requests[name][f"added_{k}_us"], 0.1), 1)
        for name in ("kansoku", "instrument") for k in ("median", "mean")
    }
    ratios["instrument_over_bare_median"] = round(requests["instrument"]["median_us"]
                                                  / requests["bare"]["median_us"], 2)
    rates = {} if args.requests_only else store_rates(not args.no_postgres, args.events)
    result = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "load_average": os.getloadavg(),
              "requests_per_run": REQUESTS, "failing_request": requests, **ratios, "store": rates}
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "errors.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
