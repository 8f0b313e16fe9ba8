"""Server time of the dashboard's pages over a big SQLite store: 1,000,000 events in 10,000 groups.

Usage: ``.venv/bin/python bench/dashboard/bench_dashboard.py [--runs 30] [--regenerate]``

The store is generated once (raw executemany, about a minute) and cached as
bench/results/dashboard-1m.db; the results go to bench/results/dashboard.json. Each page is
requested in-process through the whole web app (auth, routing, queries in the thread pool,
templates), so the time is the server's, without the network. Target: each page <= 100 ms median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from kansoku.settings import load_settings
from kansoku.store.tables import metadata
from kansoku.web.app import build_web_app

RESULTS = Path(__file__).resolve().parents[1] / "results"
DB = RESULTS / "dashboard-1m.db"
NOW = 1_750_000_000.0
GROUPS, EVENTS_PER_GROUP, DAYS = 10_000, 100, 30
SERVICES = ("shop", "billing", "search", "auth", "mailer")
ENVIRONMENTS = ("production", "staging", "development")
CATEGORIES = ("application", "database", "network", "security", "performance", "business_logic",
              "external_api", "system")
SEVERITIES = ("low", "medium", "high", "critical", "emergency")
TYPES = ("ValueError", "KeyError", "TimeoutError", "ConnectionError", "RuntimeError", "PermissionError")
TARGET_MS = 100.0


def _event_json(group: int, exc_type: str, message: str) -> str:
    """A realistic stored event (about 1.5 KB), with markers replaced per event."""
    frame = {"filename": f"app/module_{group % 97}.py", "abs_path": f"/srv/app/module_{group % 97}.py",
             "module": f"app.module_{group % 97}", "function": f"handler_{group % 13}", "lineno": 40 + group % 50,
             "in_app": True, "pre_context": ["def handler(request):", "    data = load(request)"],
             "context_line": "    raise " + exc_type + "(message)", "post_context": ["", "def load(request):"],
             "locals": {"request": "<Request POST /orders>", "data": {"id": 1, "card": "[REDACTED]"}}}
    data = {"event_id": "@ID@", "timestamp": 0.0, "exception_type": exc_type, "message": message,
            "exceptions": [{"type": exc_type, "module": "builtins", "message": message, "relation": "",
                            "frames": [{"filename": "starlette/routing.py", "module": "starlette.routing",
                                        "function": "handle", "lineno": 73, "in_app": False}, frame]}],
            "culprit": f"app.module_{group % 97}.handler_{group % 13}", "fingerprint_parts": [exc_type],
            "severity": "high", "category": "application", "level": "error",
            "request": {"method": "POST", "route": "/orders/{id}", "url": "http://shop.test/orders/1",
                        "headers": {"user-agent": "bench", "accept": "application/json"}, "client": "10.1.2.3"},
            "user": {"id": "@USER@"}, "tags": {"region": "@REGION@", "plan": "@PLAN@", "browser": "firefox"},
            "request_id": "@ID@", "trace_id": "@TRACE@",
            "breadcrumbs": [{"timestamp": 0, "category": "http", "message": "GET /cart", "level": "info"},
                            {"timestamp": 0, "category": "db", "message": "SELECT orders", "level": "info"}],
            "service": "shop", "environment": "production", "release": "1.4.2", "host": "web-1",
            "handled": False, "mechanism": "middleware"}
    return json.dumps(data)


def generate(path: Path) -> None:
    """Write the store: groups, events, hourly buckets, spans, request statistics and the outbox."""
    started = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-200000;")
    _groups_and_events(conn, rng)
    _spans_stats_outbox(conn, rng)
    conn.commit()
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    print(f"generated {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.monotonic() - started:.0f} s",
          file=sys.stderr)


def _groups_and_events(conn: sqlite3.Connection, rng: random.Random) -> None:
    """Groups first; then events and hourly buckets in time order, as the writer stores them over time."""
    span = DAYS * 86400
    templates: dict[int, str] = {}
    stream: list[tuple[float, int]] = []
    for gid in range(1, GROUPS + 1):
        exc_type = TYPES[gid % len(TYPES)]
        message = f"failure {gid} in step {gid % 17}"
        times = sorted(NOW - rng.random() * span for _ in range(EVENTS_PER_GROUP))
        stream += [(ts, gid) for ts in times]
        status = rng.choices(("unresolved", "resolved", "ignored"), (7, 2, 1))[0]
        conn.execute(
            "INSERT INTO kansoku_error_groups (id, group_key, fingerprint_parts, title, culprit, exception_type,"
            " message, severity, category, service, environment, status, first_seen, last_seen, count,"
            " users_affected, regressed, regressed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (gid, f"{gid:064x}", json.dumps([exc_type, f"app.module_{gid % 97}:handler_{gid % 13}"]),
             f"{exc_type}: {message}", f"app.module_{gid % 97}.handler_{gid % 13}", exc_type, message,
             SEVERITIES[gid % 5], CATEGORIES[gid % 8], SERVICES[gid % 5], ENVIRONMENTS[gid % 3], status,
             times[0], times[-1], EVENTS_PER_GROUP + rng.randrange(1000), rng.randrange(50), gid % 50 == 0,
             times[-1] if gid % 50 == 0 else None))
        templates[gid] = _event_json(gid, exc_type, message)
    stream.sort()
    buckets: dict[tuple[int, int], int] = {}
    for start in range(0, len(stream), 20_000):
        rows = []
        for offset, (ts, gid) in enumerate(stream[start : start + 20_000]):
            number = start + offset + 1
            eid, trace = f"{number:032x}", f"{number * 7919:032x}"
            data = (templates[gid].replace("@ID@", eid).replace("@TRACE@", trace)
                    .replace("@USER@", f"u{rng.randrange(500)}").replace("@REGION@", rng.choice(("eu", "us", "ap")))
                    .replace("@PLAN@", rng.choice(("free", "pro"))).replace('"timestamp": 0.0', f'"timestamp": {ts}'))
            rows.append((eid, gid, ts, SEVERITIES[gid % 5], CATEGORIES[gid % 8], "1.4.2", None, eid, trace, data))
            key = (int(ts // 3600), gid)
            buckets[key] = buckets.get(key, 0) + 1
        conn.executemany("INSERT INTO kansoku_error_events (event_id, group_id, timestamp, severity, category,"
                         " release, user_id, request_id, trace_id, data) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO kansoku_error_buckets (hour, group_id, count) VALUES (?,?,?)",
                     [(hour, gid, n) for (hour, gid), n in sorted(buckets.items())])
    conn.execute("UPDATE kansoku_error_groups SET last_event_id = (SELECT event_id FROM kansoku_error_events e"
                 " WHERE e.group_id = kansoku_error_groups.id ORDER BY timestamp DESC LIMIT 1)")


def _spans_stats_outbox(conn: sqlite3.Connection, rng: random.Random) -> None:
    spans = []
    for trace in range(40_000):
        start = NOW - rng.random() * 86400 * 2
        tid = f"{trace:032x}"
        root_ms = rng.lognormvariate(3, 1)
        spans.append((f"{trace * 5:016x}", tid, None, f"GET /items/{{id}} {trace % 20}", "SERVER", "shop", start,
                      start + root_ms / 1000, root_ms, "OK", None, '{"http.route": "/items/{id}"}', "[]", 1))
        for child in range(1, 5):
            ms = root_ms / 5
            at = start + child * ms / 1000
            spans.append((f"{trace * 5 + child:016x}", tid, f"{trace * 5:016x}", f"SELECT {child}", "CLIENT",
                          "shop", at, at + ms / 1000, ms, "OK", None, '{"db.system": "sqlite"}', "[]", 0))
    conn.executemany("INSERT INTO kansoku_spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", spans)
    buckets = json.dumps({"0.005": 50, "0.01": 120, "0.025": 300, "0.05": 420, "0.1": 480, "0.25": 495,
                          "0.5": 499, "1.0": 500, "+Inf": 500})
    minute = int(NOW // 60)
    conn.executemany(
        "INSERT INTO kansoku_request_stats VALUES (?,?,?,?,?,?,?,?)",
        [(minute - m, "shop", inst, 500, 10, rng.randrange(5), 20.0, buckets)
         for m in range(7 * 1440) for inst in ("web-1:1", "web-2:2", "web-3:3")])
    conn.executemany(
        "INSERT INTO kansoku_outbox (created_at, channel, rule, group_key, kind, idempotency_key, payload, status,"
        " attempts, next_attempt_at, last_error) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(NOW - i * 60, "ops", "critical_errors", f"{i:064x}", "trigger", f"k{i}", '{"title": "x"}',
          "dead" if i % 50 == 0 else "sent", 1, NOW, None) for i in range(5000)])


async def measure(app: Any, pages: dict[str, list[str]], runs: int) -> dict[str, dict[str, float]]:
    """Median, p95 and max milliseconds of each page, after warming up."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555), root_path="/kansoku")
    results: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1/kansoku") as client:
        for name, paths in pages.items():
            for path in paths[:3]:
                assert (await client.get(path)).status_code == 200, path
            times = []
            for i in range(runs):
                started = time.perf_counter()
                response = await client.get(paths[i % len(paths)])
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            times.sort()
            results[name] = {"median_ms": round(statistics.median(times), 1),
                             "p95_ms": round(times[int(len(times) * 0.95) - 1], 1), "max_ms": round(times[-1], 1)}
            print(f"{name:32s} median {results[name]['median_ms']:7.1f} ms   p95 {results[name]['p95_ms']:7.1f} ms",
                  file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()
    if args.regenerate or not DB.exists():
        generate(DB)
    engine = sa.create_engine(f"sqlite:///{DB}")
    settings = load_settings(database_url=f"sqlite:///{DB}")
    runtime = types.SimpleNamespace(settings=settings, engine=engine, store=None, errors=None, debugger=None,
                                    alerts=None)
    app = build_web_app(runtime, clock=lambda: NOW)
    rng = random.Random(1)
    details = [f"/errors/{rng.randrange(1, GROUPS + 1)}" for _ in range(args.runs)]
    pages = {
        "overview (24h)": ["/"],
        "overview (7d)": ["/?range=7d"],
        "errors list": ["/errors"],
        "errors list, sort=count": ["/errors?sort=count"],
        "errors list, search": ["/errors?status=&q=step+5"],
        "errors list, filters": ["/errors?severity=high&service=shop&environment=production"],
        "errors list, page 200": ["/errors?status=&page=200"],
        "error detail": details,
        "traces": ["/traces"],
        "alerts": ["/alerts"],
    }
    results = asyncio.run(measure(app, pages, args.runs))
    engine.dispose()
    with sqlite3.connect(DB) as conn:
        counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                  for table in ("kansoku_error_events", "kansoku_error_groups", "kansoku_spans")}
    report = {"store": counts, "runs": args.runs, "target_ms": TARGET_MS, "pages": results,
              "python": sys.version.split()[0]}
    (RESULTS / "dashboard.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    slow = [name for name, r in results.items() if r["median_ms"] > TARGET_MS]
    if slow:
        print(f"over the {TARGET_MS:.0f} ms target: {', '.join(slow)}", file=sys.stderr)


if __name__ == "__main__":
    main()
