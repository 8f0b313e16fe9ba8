"""The debug API: performance summary, memory report and clear-history over HTTP."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from kansoku import debug
from kansoku.web.api_debug import routes


async def test_performance_memory_and_clear_history(debugger: debug.Debugger) -> None:
    """GET performance and memory answer JSON; POST clear-history empties the summary."""
    debugger.performance.record("orders.create", 0.020)
    debugger.performance.record("orders.create", 0.040)
    app = Starlette(routes=routes(debugger))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        performance = (await client.get("/api/debug/performance")).json()
        assert performance["unit"] == "seconds" and performance["relative_error"] == 0.01
        stats = performance["functions"]["orders.create"]
        assert (stats["count"], stats["min"], stats["max"], stats["total"]) == (2, 0.020, 0.040, 0.060)

        memory = (await client.get("/api/debug/memory")).json()
        assert memory["process"]["rss"] > 0 and "gc" in memory and "tracked_objects" in memory

        assert (await client.get("/api/debug/clear-history")).status_code == 405
        assert (await client.post("/api/debug/clear-history")).json() == {"cleared": True}
        assert (await client.get("/api/debug/performance")).json()["functions"] == {}
