"""The memory a worker pays: RSS at start and after mixed traffic, kansoku against bare and the peers.

Each configuration of bench/http/apps.py runs in its own process. The app gets two more routes
(`/orders/{order_id}` that raises, `/search` with a query string), its lifespan is started, and it
is driven in process through ASGI with mixed traffic:

- 85% `GET /items/{id}` with ids cycling over 10,000 values (one route template);
- 5% `GET /orders/{id}` that raises (a 500, an error event, a span with the exception);
- 5% `GET /nowhere/{n}` with n never repeating (unmatched paths: one label, not one per path);
- 5% `GET /search?q=...&token=...` with a client `X-Request-ID`.

kansoku-full runs over a SQLite store that is up to date (migrated before the run). RSS (after
`gc.collect()`) is read after the first request, after 10,000 requests, and at the
end (100,000 by default). "Added" is against the bare app in the same run; "growth" is from
10,000 to the end, which should be flat once caches and label children are warm.

    python bench/memory/bench_memory.py [--requests 100000] [CONFIG ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

CONFIGS = ("bare", "kansoku", "kansoku-full", "peers")
CHECKPOINTS = (10_000,)


def _rss_mb() -> float:
    import psutil

    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def _app(config: str) -> Any:
    from bench.http.apps import build

    app = build(config)

    @app.get("/orders/{order_id}")
    async def fail(order_id: int) -> None:
        raise ValueError(f"order {order_id} over limit")

    @app.get("/search")
    async def search(q: str = "") -> dict[str, Any]:
        return {"q": q, "hits": []}

    return app


def _scope(i: int) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench/1.0")]
    query = b""
    kind = i % 20
    if kind == 0:
        path = f"/orders/{i}"
    elif kind == 1:
        path = f"/nowhere/{i}"
    elif kind == 2:
        path, query = "/search", f"q=widget+{i % 100}&token=secret{i}".encode()
        headers.append((b"x-request-id", f"client-{i}".encode()))
    else:
        path = f"/items/{i % 10_000}"
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


async def _run(config: str, requests: int) -> dict[str, Any]:
    app = _app(config)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                       inbox.get, replies.put))
    await inbox.put({"type": "lifespan.startup"})
    await replies.get()
    statuses: dict[int, int] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    async def one(i: int) -> None:
        try:
            await app(_scope(i), receive, send)
        except ValueError:
            pass  # the server's part: the 500 was sent

    await one(3)
    rss = {"start": _rss_mb()}
    for i in range(requests):
        await one(i)
        if i + 1 in CHECKPOINTS:
            rss[str(i + 1)] = _rss_mb()
            await asyncio.sleep(0)
    rss["end"] = _rss_mb()
    await inbox.put({"type": "lifespan.shutdown"})
    await replies.get()
    await lifespan
    return {"config": config, "rss_mb": rss, "statuses": statuses}


def run_one(config: str, requests: int, out: str) -> None:
    """Child process: drive one configuration; its figures as JSON in `out` (stdout is /dev/null)."""
    result = asyncio.run(_run(config, requests))
    Path(out).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("configs", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    if args.one:
        run_one(args.one, args.requests, args.out)
        return
    configs = args.configs if "bare" in args.configs else ["bare", *args.configs]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    results = {}
    sys.path.insert(0, str(ROOT / "src"))
    from kansoku.store import migrations

    with tempfile.TemporaryDirectory() as tmp:
        # A store that is up to date, as a worker restarting in production finds it.
        env["BENCH_DATABASE_URL"] = f"sqlite:///{tmp}/kansoku.db"
        migrations.upgrade(env["BENCH_DATABASE_URL"])
        for config in configs:
            out = Path(tmp) / f"{config}.json"
            done = subprocess.run([sys.executable, __file__, "--one", config, "--requests", str(args.requests),
                                   "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, check=False, cwd=ROOT, env=env)
            if done.returncode != 0:
                raise SystemExit(f"{config} failed:\n{done.stderr[-3000:]}")
            results[config] = json.loads(out.read_text())
            print(f"  {config:24s} {results[config]['rss_mb']}", file=sys.stderr, flush=True)
    bare = results["bare"]["rss_mb"]
    mid = str(CHECKPOINTS[-1])
    print(f"python {sys.version.split()[0]}, {args.requests:,} requests of mixed traffic per configuration, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(f"| configuration | RSS at start, MB | added | after {int(mid):,} | added | after {args.requests:,} | "
          f"added | growth {int(mid):,} to {args.requests:,} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for config, result in results.items():
        rss = result["rss_mb"]
        print(f"| {config} | {rss['start']:.1f} | {rss['start'] - bare['start']:+.1f} | {rss[mid]:.1f} | "
              f"{rss[mid] - bare[mid]:+.1f} | {rss['end']:.1f} | {rss['end'] - bare['end']:+.1f} | "
              f"{rss['end'] - rss[mid]:+.1f} |")
    if "kansoku-full" in results and "peers" in results:
        ours = results["kansoku-full"]["rss_mb"]["end"] - bare["end"]
        theirs = results["peers"]["rss_mb"]["end"] - bare["end"]
        print(f"\nkansoku-full adds {ours:.1f} MB after {args.requests:,} requests, the peer stack {theirs:.1f} MB "
              f"({ours / theirs:.2f} of it; target <= 0.50)")


if __name__ == "__main__":
    main()
