"""The dashboard's routes: server-rendered pages, each one thread-pool hop for its queries.

`dashboard_routes(ctx)` returns Starlette routes relative to the kansoku prefix ("/", "/errors",
...). Pages read the store through `kansoku.store.queries`, as the API and the CLI do; the
runtime's parts (debugger, alert engine) are optional, and a page says so when its part is missing.
This module holds the overview, performance and settings pages; `pages_errors`, `pages_traces`
and `pages_alerts` the others.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from kansoku.store import queries as q
from kansoku.web.dashboard import pages_alerts, pages_errors, pages_logs, pages_monitors, pages_services, pages_traces
from kansoku.web.dashboard.charts import bar_chart, compact, duration, line_chart
from kansoku.web.dashboard.context import DashboardContext, Endpoint, hour_labels, no_store
from kansoku.web.dashboard.present import mask_settings
from kansoku.web.dashboard.present_memory import memory_sections
from kansoku.web.dashboard.series import FIT, RANGES, request_points, totals, window

__all__ = ["STATIC_DIR", "dashboard_routes"]

STATIC_DIR = Path(__file__).parent / "static"


# --- overview -------------------------------------------------------------------------------------


def _overview_data(ctx: DashboardContext, range_name: str) -> dict[str, Any]:
    engine = ctx.engine
    assert engine is not None
    now = ctx.clock()
    last_minute = int(now // 60)
    first_data = q.first_request_minute(engine, last_minute - 1439) if range_name == FIT else None
    shown = window(range_name, last_minute, first_data)
    first_minute, minutes, step = shown.first_minute, shown.minutes, shown.step
    rows = q.request_rows(engine, first_minute, last_minute)
    points = request_points(rows, first_minute, minutes, step, ctx.settings.latency_buckets)
    fmt = "%d %b %H:%M" if minutes > 1440 else "%H:%M"
    labels = [datetime.fromtimestamp(p.start, UTC).strftime(fmt) for p in points]
    # the newest point covers only the time elapsed so far (at least 10 s): a rate over that, not a dip
    spans = [max(1 / 6, min(float(step), (now - p.start) / 60)) for p in points]
    hour = int(now // 3600)
    hourly = q.hourly_counts(engine, hour - 23, hour)
    total = totals(points)
    return {
        "range": range_name,
        "ranges": list(RANGES),
        "window": shown,
        "total": total,
        "rate_chart": line_chart([("requests/min", [p.requests / covered for p, covered in zip(points, spans,
                                                                                               strict=True)])],
                                 labels, title="Requests per minute"),
        "error_chart": line_chart([("5xx %", [p.error_rate for p in points])], labels,
                                  title="Share of requests answered 5xx, percent"),
        "latency_chart": line_chart(
            [("p50", [p.latency_ms(0.5) for p in points]), ("p95", [p.latency_ms(0.95) for p in points])],
            labels, title="Request latency in milliseconds", fmt=lambda v: duration(v).replace(" ", "")),
        "events_chart": bar_chart([hourly.get(hour - 23 + i, 0) for i in range(24)],
                                  hour_labels(hour - 23, 24), title="Error events per hour, last 24 hours"),
        "p50": total.latency_ms(0.5),
        "p95": total.latency_ms(0.95),
        "counts": q.count_by_status(engine),
        "open_groups": q.top_open_groups(engine),
        "new_groups": q.new_groups(engine, now - 86400),
        "regressed": q.regressed_groups(engine),
        "notifications": q.recent_notifications(engine),
    }


async def overview(ctx: DashboardContext, request: Request) -> Response:
    """GET /: traffic, latency and errors at a glance."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    range_name = request.query_params.get("range", FIT)
    data = await ctx.read(_overview_data, ctx, range_name if range_name in RANGES else FIT)
    return ctx.page(request, "overview.html", page_name="overview", title="Overview", **data)


# --- performance and settings ---------------------------------------------------------------------


FUNCTION_COLUMNS = ("name", "count", "total_ms", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms")


def function_rows(summary: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """The debugger's per-function summary (seconds) as rows in milliseconds."""
    rows = []
    for name, stats in summary.items():
        row: dict[str, Any] = {"name": str(name), "count": int(stats.get("count", 0))}
        for key in ("total", "mean", "p50", "p95", "p99", "min", "max"):
            value = stats.get(key)
            # an empty sketch reports NaN: show no value rather than "nan ms"
            row[f"{key}_ms"] = value * 1000.0 if value is not None and math.isfinite(value) else None
        rows.append(row)
    return rows


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Rows sorted by `key`; missing values last whatever the direction."""
    present = [row for row in rows if row.get(key) is not None]
    missing = [row for row in rows if row.get(key) is None]
    return sorted(present, key=lambda row: row[key], reverse=descending) + missing


def _performance_data(debugger: Any) -> dict[str, Any]:
    report = debugger.memory.report()
    return {"functions": function_rows(debugger.performance.summary()),
            "memory": memory_sections(report), "memory_taken": report.get("timestamp")}


async def performance(ctx: DashboardContext, request: Request) -> Response:
    """GET /performance: the debugger's function summary (sortable) and memory report."""
    data: dict[str, Any] = {"functions": [], "memory": None, "memory_taken": None}
    if ctx.debugger is not None:
        data = await ctx.read(_performance_data, ctx.debugger)
    sort = request.query_params.get("sort", "total_ms")
    sort = sort if sort in FUNCTION_COLUMNS else "total_ms"
    descending = request.query_params.get("dir", "asc" if sort == "name" else "desc") != "asc"
    return ctx.page(request, "performance.html", page_name="performance", title="Performance",
                    has_debugger=ctx.debugger is not None, columns=FUNCTION_COLUMNS, sort=sort,
                    descending=descending, rows=sort_rows(data["functions"], sort, descending),
                    memory=data["memory"], memory_taken=data["memory_taken"])


async def settings_page(ctx: DashboardContext, request: Request) -> Response:
    """GET /settings: the effective configuration, secrets masked."""
    values = mask_settings(ctx.settings.masked())
    return ctx.page(request, "settings.html", page_name="settings", title="Settings",
                    values=sorted(values.items()), compact=compact)


def dashboard_routes(ctx: DashboardContext) -> list[BaseRoute]:
    """Every page route, the form actions, and the static assets."""
    def bind(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(endpoint)
        async def call(request: Request) -> Response:
            return await endpoint(ctx, request)

        return call

    pages: list[tuple[str, Endpoint, list[str]]] = [
        ("/", overview, ["GET"]),
        ("/performance", performance, ["GET"]),
        ("/settings", settings_page, ["GET"]),
        *pages_errors.ROUTES,
        *pages_logs.ROUTES,
        *pages_traces.ROUTES,
        *pages_services.ROUTES,
        *pages_alerts.ROUTES,
        *pages_monitors.ROUTES,
    ]
    routes: list[BaseRoute] = [Route(path, bind(endpoint), methods=methods) for path, endpoint, methods in pages]
    routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))
    return routes
