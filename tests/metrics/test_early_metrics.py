"""Custom metrics made at import time, before instrument(), are served on /metrics (a fresh process each)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

APP = '''
import asyncio, json, sys

import httpx
from fastapi import FastAPI

import kansoku
from kansoku.metrics import MetricConfig, counter, gauge, histogram, register_metric, timed

# The chapter's shape: metrics defined at module level, before the app is instrumented.
orders = counter("chapter_orders_created", "Orders created.", ["channel"])
inventory = gauge("chapter_inventory_level", "Items in stock.")
latency = histogram("chapter_checkout_seconds", "Checkout time.", buckets=(0.1, 1.0))
revenue = register_metric(MetricConfig("chapter_revenue", "Revenue.", "counter", labels=("currency",)))
clash = counter("http_requests", "A name kansoku serves itself.")

@timed("chapter_import_step")
def step() -> int:
    return 1

orders.labels("web").inc(2)
inventory.set(40)
latency.observe(0.5)
revenue.labels("EUR").inc(12.5)
step()

app = FastAPI()
kansoku.instrument(app, database_url=sys.argv[1], strict=True)
orders.labels("web").inc()  # the object the module holds, after instrument()
again = counter("chapter_orders_created", "Orders created.", ["channel"])

async def main() -> None:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        text = (await client.get("/metrics")).text
    with open(sys.argv[2], "w") as out:
        json.dump({"metrics": text, "same_object": again is orders}, out)

asyncio.run(main())
'''


def test_metrics_made_before_instrument_reach_metrics(tmp_path: Path) -> None:
    """counter(), gauge(), histogram(), register_metric() and timed before instrument(): on /metrics, values kept."""
    script = tmp_path / "early.py"
    script.write_text(textwrap.dedent(APP), encoding="utf-8")
    output = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(script), f"sqlite:///{tmp_path / 'k.db'}", str(output)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    result = orjson.loads(output.read_bytes())
    text = result["metrics"]
    for line in ('chapter_orders_created_total{channel="web"} 3.0', "chapter_inventory_level 40.0",
                 'chapter_checkout_seconds_bucket{le="1.0"} 1.0', 'chapter_revenue_total{currency="EUR"} 12.5',
                 'function_calls_total{function="chapter_import_step",module="__main__",status="success"} 1.0'):
        assert line in text, f"{line!r} not on /metrics"
    assert result["same_object"] is True
    assert "HELP http_requests_total A name kansoku serves itself." not in text
    lines = [orjson.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [line["metric"] for line in lines if "metric" in line] == ["http_requests"], "the clash is not reported"
