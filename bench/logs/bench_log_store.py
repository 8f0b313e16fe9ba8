"""The log store: writer throughput, the request path with storage on against off, query time at 1M lines.

    python bench/logs/bench_log_store.py writer  [--lines 200000] [--postgres URL]
    python bench/logs/bench_log_store.py request [--passes 3] [--rounds 10] [--requests 1000]
    python bench/logs/bench_log_store.py query   [--lines 1000000] [--db /tmp/kansoku-bench-logs.db]
    python bench/logs/bench_log_store.py instructions   # request path under callgrind, store on vs off

writer: the writer thread's whole work per line (event dict -> record -> row and tokens -> batched
INSERT with the FTS5 blocks, or the PostgreSQL unnest INSERT with its tsvector), batches of 5,000,
lines/s by wall clock and by the process's CPU time (CPU time is what the machine spends; wall
clock also counts waiting for a CPU on a busy machine).

request: in-process ASGI calls of one FastAPI endpoint that logs one line (plus the access line),
each configuration in its own process, passes interleaved; fastest round per configuration, as in
bench/http: bare app, the plain-Python floor (bench/http/floor.py), the peer stack (bench/http's
`peers`: OpenTelemetry + prometheus-fastapi-instrumentator + structlog access log +
asgi-correlation-id + sentry-sdk), kansoku.instrument() with store_logs off, and with store_logs on
and no budget (log_store_rate=0: every line kept, the worst case).

instructions: the same configurations under `valgrind --tool=callgrind --separate-threads=yes`,
100 and 600 requests each, the difference per request: the request path's instructions (the
main thread) apart from the writer thread's (what storing costs, off the request path). Counts do
not move with the machine's load as times do.

query: a SQLite store of N lines (made once, kept at --db), then the server time (median of 7) of a
selective field=value query, a free-text word in 1 % of lines, a phrase, and level>=warning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # `bench.http` importable when run as a script


def _event(i: int) -> dict[str, Any]:
    """A kansoku event dict as the logger hands it to the keeper (an app line inside a request)."""
    return {"timestamp": "2026-12-02T10:00:00.123Z", "level": "info", "logger": "shop.orders",
            "event": "payment failed: card declined" if i % 100 == 0 else "order created",
            "category": "application", "service": "shop", "environment": "production", "version": "1.4.2",
            "request_id": f"{random.getrandbits(128):032x}", "trace_id": f"{random.getrandbits(128):032x}",
            "span_id": f"{random.getrandbits(64):016x}", "order_id": i, "user_id": i % 5000, "amount": 12.5,
            "currency": "EUR"}


def writer(lines: int, url: str) -> dict[str, float]:
    from kansoku.logs import record_of
    from kansoku.settings import load_settings
    from kansoku.store import Store
    from kansoku.store.logs import write_logs

    store = Store.open(load_settings(database_url=url), migrate=True)
    events = [_event(i) for i in range(lines)]
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, lines, 5000):
        write_logs(store.engine, [record_of(20, e) for e in events[start:start + 5000]])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.close()
    return {"lines": lines, "wall_s": wall, "cpu_s": cpu, "lines_per_s_wall": lines / wall,
            "lines_per_s_cpu": lines / cpu}


# --- request path -----------------------------------------------------------------------------------

CONFIGS = ("bare", "floor", "peers", "kansoku-store-off", "kansoku-store-on")


def _app() -> Any:
    from fastapi import FastAPI

    import kansoku

    app = FastAPI()
    log = kansoku.get_logger("shop.items")

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, Any]:
        log.info("item read", item_id=item_id, source="catalog")
        return {"item_id": item_id, "name": "widget"}

    return app


def _build(name: str) -> Any:
    from bench.http import apps

    if name == "peers":
        import sentry_sdk

        sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", default_integrations=True)
        app = apps.with_opentelemetry(_app())
        app = apps.with_instrumentator(app)
        app = apps.with_structlog_access_log(app)
        return apps.with_correlation_id(app)
    if name == "bare":
        return _app()
    if name == "floor":
        return apps.with_floor(_app())
    import kansoku

    url = f"sqlite:///{tempfile.mkdtemp(prefix='kansoku-bench-logs-')}/kansoku.db"
    store = name == "kansoku-store-on"
    return kansoku.instrument(_app(), database_url=url, log_format="json", store_logs=store, log_store_rate=0)


def _one(name: str, rounds: int, requests: int, out: str) -> None:
    from bench.http.bench_http import _measure

    app = _build(name)
    result = asyncio.run(_measure(app, rounds, requests))
    import kansoku.runtime as runtime

    current = runtime.current()
    keeper = getattr(current, "log_keeper", None)
    if keeper is not None:  # the lines were stored, not dropped: say how many
        keeper.flush()
        result["stored"] = keeper.stored
        result["not_stored"] = keeper.not_stored
    Path(out).write_text(json.dumps({"config": name, **result}))


def request(passes: int, rounds: int, requests: int) -> dict[str, Any]:
    best: dict[str, float] = {}
    medians: dict[str, list[float]] = {name: [] for name in CONFIGS}
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(passes):
            for name in CONFIGS:
                path = Path(tmp) / f"{name}.json"
                done = subprocess.run([sys.executable, __file__, "--one", name, "--rounds", str(rounds),
                                       "--requests", str(requests), "--out", str(path)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
                                      cwd=ROOT)
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{done.stderr}")
                result = json.loads(path.read_text())
                best[name] = min(best.get(name, result["best_us"]), result["best_us"])
                medians[name].append(result["median_us"])
                if "stored" in result:
                    extra[name] = {"stored": result["stored"], "not_stored": result["not_stored"]}
                print(f"  {name:20s} best {result['best_us']:8.1f} µs  median {result['median_us']:8.1f} µs",
                      file=sys.stderr, flush=True)
    return {"best_us": best, "median_us": {n: statistics.median(v) for n, v in medians.items()}, "stored": extra}


def _count(name: str, count: int) -> None:
    """Serve `count` requests of configuration `name` in process (after a warm-up of 100), then flush."""
    from bench.http.bench_http import SCOPE

    app = _build(name)

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            return None

        for _ in range(100 + count):
            scope = dict(SCOPE)
            scope["headers"] = list(SCOPE["headers"])
            await app(scope, receive, send)

    asyncio.run(run())
    import kansoku.runtime as runtime

    current = runtime.current()
    if current is not None:
        current.close(30)


def instructions(configs: list[str], small: int = 100, large: int = 600) -> dict[str, tuple[float, float]]:
    from bench.callgrind import per_request

    out = {}
    for name in configs:
        per = per_request(lambda n, name=name: [sys.executable, __file__, "--count", str(n), "--one", name],
                          small, large)
        out[name] = per
        print(f"  {name:20s} {per[0] / 1000:8.1f} k instructions/request on the request path, "
              f"{per[1] / 1000:8.1f} k in other threads", file=sys.stderr, flush=True)
    return out


# --- queries ------------------------------------------------------------------------------------------


def _fill(db: Path, lines: int) -> None:
    from kansoku.logs import record_of
    from kansoku.settings import load_settings
    from kansoku.store import Store
    from kansoku.store.logs import write_logs

    store = Store.open(load_settings(database_url=f"sqlite:///{db}"), migrate=True)
    started = time.perf_counter()
    for start in range(0, lines, 5000):
        batch = []
        for i in range(start, min(start + 5000, lines)):
            event = _event(i)
            if i % 97 == 0:
                event["level"] = "warning"
            batch.append(record_of(30 if i % 97 == 0 else 20, event))
        write_logs(store.engine, batch)
    store.close()
    print(f"  filled {lines} lines in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def query(lines: int, db: Path) -> dict[str, Any]:
    from kansoku.settings import load_settings
    from kansoku.store import Store
    from kansoku.store.search import search_logs

    marker = db.with_suffix(".lines")
    if not (db.exists() and marker.exists() and marker.read_text() == str(lines)):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        _fill(db, lines)
        marker.write_text(str(lines))
    store = Store.open(load_settings(database_url=f"sqlite:///{db}"), migrate=False)
    picks = [random.randrange(lines) for _ in range(7)]
    cases = {
        "field=value (order_id, 1 line)": [f"order_id={n}" for n in picks],
        "free text: word in 1 % of lines": ["declined"] * 7,
        'free text: phrase "card declined"': ['"card declined"'] * 7,
        "level>=warning (1 % of lines)": ["level>=warning"] * 7,
        "field=value + free text": [f"user_id={n % 5000} payment" for n in picks],
    }
    out: dict[str, Any] = {}
    for name, queries in cases.items():
        times, cpu, found = [], [], 0
        for text in queries:
            started, started_cpu = time.perf_counter(), time.thread_time()
            found = len(search_logs(store.engine, text, limit=50)["lines"])
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - started_cpu) * 1000)
        out[name] = {"median_ms": statistics.median(times), "median_cpu_ms": statistics.median(cpu),
                     "max_ms": max(times), "lines_returned": found}
        print(f"  {name:40s} median {out[name]['median_ms']:8.1f} ms wall, {out[name]['median_cpu_ms']:8.1f} ms CPU"
              f"  (returned {found})", file=sys.stderr, flush=True)
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=["writer", "request", "query", "instructions"])
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--configs", default="bare,kansoku-store-off,kansoku-store-on",
                        help="instructions: the configurations to count (comma-separated)")
    parser.add_argument("--lines", type=int)
    parser.add_argument("--postgres", metavar="URL", help="also measure the writer on this PostgreSQL database")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "kansoku-bench-logs.db")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the access lines cost what they cost in production
        if args.count:
            _count(args.one, args.count)
        else:
            _one(args.one, args.rounds, args.requests, args.out)
        return
    if args.what == "writer":
        with tempfile.TemporaryDirectory() as tmp:
            result = {"sqlite": writer(args.lines or 200_000, f"sqlite:///{tmp}/kansoku.db")}
        if args.postgres:
            result["postgresql"] = writer(args.lines or 200_000, args.postgres)
        for backend, numbers in result.items():
            print(f"{backend:10s} {numbers['lines_per_s_wall']:10,.0f} lines/s (wall)  "
                  f"{numbers['lines_per_s_cpu']:10,.0f} lines/s (CPU)  {numbers['lines']} lines")
    elif args.what == "request":
        result = request(args.passes, args.rounds, args.requests)
        bare = result["best_us"]["bare"]
        off = result["best_us"]["kansoku-store-off"]
        print(f"{'config':20s} {'best µs':>9s} {'median µs':>10s} {'x bare':>7s}")
        for name in CONFIGS:
            print(f"{name:20s} {result['best_us'][name]:9.1f} {result['median_us'][name]:10.1f} "
                  f"{result['best_us'][name] / bare:7.2f}")
        on = result["best_us"]["kansoku-store-on"]
        medians = result["median_us"]["kansoku-store-on"] / result["median_us"]["kansoku-store-off"]
        print(f"store on / off: {on / off:.3f} (best rounds); {medians:.3f} (medians); stored: {result['stored']}")
    elif args.what == "instructions":
        counts = instructions(args.configs.split(","))
        bare = counts.get("bare", (1.0, 0.0))[0]
        print("| configuration | k instr./request (request path) | x bare | k instr./request (other threads) |")
        print("|---|---:|---:|---:|")
        for name, (main, other) in counts.items():
            print(f"| {name} | {main / 1000:.1f} | {main / bare:.2f} | {other / 1000:.1f} |")
        off, on = counts["kansoku-store-off"][0], counts["kansoku-store-on"][0]
        print(f"store on / off on the request path: {on / off:.3f}")
    elif args.what == "query":
        query(args.lines or 1_000_000, args.db)
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
