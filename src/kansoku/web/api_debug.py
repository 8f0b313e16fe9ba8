"""JSON API over the debugger (chapter 8.3): performance summary, memory report, clear history.

Mounted under the route prefix by the dashboard app, which adds authorization and the CSRF check
around every route; nothing here checks credentials. The memory report (a tracemalloc snapshot
can take a while) runs in the thread pool.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from kansoku.debug import Debugger

__all__ = ["routes"]


def _finite(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """JSON has no NaN or infinity: an empty sketch's figures become null."""
    return {name: {key: value if math.isfinite(value) else None for key, value in stats.items()}
            for name, stats in summary.items()}


def routes(debugger: Debugger) -> list[BaseRoute]:
    """GET /api/debug/performance, GET /api/debug/memory, POST /api/debug/clear-history."""

    async def performance(request: Request) -> JSONResponse:
        stats = debugger.performance
        body: dict[str, Any] = {
            "functions": _finite(stats.summary()),
            "unit": "seconds",
            "relative_error": stats.relative_error,
            "dropped": stats.dropped,
        }
        return JSONResponse(body)

    async def memory(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(debugger.memory.report))

    async def clear_history(request: Request) -> JSONResponse:
        debugger.clear()
        return JSONResponse({"cleared": True})

    return [
        Route("/api/debug/performance", performance, methods=["GET"]),
        Route("/api/debug/memory", memory, methods=["GET"]),
        Route("/api/debug/clear-history", clear_history, methods=["POST"]),
    ]
