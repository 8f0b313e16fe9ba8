"""Trace pages: recent and slowest root spans, and the waterfall of one trace with its errors."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kansoku.store import queries as q
from kansoku.store.query_syntax import QuerySyntaxError
from kansoku.store.search import search_logs
from kansoku.store.trace_search import search_traces
from kansoku.web.dashboard.context import DashboardContext, Endpoint, no_store, redirect
from kansoku.web.dashboard.present import format_value, waterfall

__all__ = ["ROUTES"]

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def _list_data(ctx: DashboardContext, query: str) -> dict[str, Any]:
    engine = ctx.engine
    assert engine is not None
    if query:
        return {"found": search_traces(engine, query, limit=100)["traces"], "recent": [], "slowest": []}
    return {"found": None, "recent": q.recent_roots(engine), "slowest": q.slowest_roots(engine, ctx.clock() - 86400)}


async def traces_list(ctx: DashboardContext, request: Request) -> Response:
    """GET /traces: recent and slowest traces, or those matching `?q=` (the query syntax); `?trace_id=`
    jumps to one."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    wanted = request.query_params.get("trace_id", "").strip().lower()
    if _TRACE_ID.match(wanted):
        return redirect(request, f"/traces/{wanted}")
    query = request.query_params.get("q", "")[:2000].strip()
    try:
        data = await ctx.read(_list_data, ctx, query)
    except QuerySyntaxError as exc:
        return ctx.page(request, "traces.html", status_code=400, page_name="traces", title="Traces", query=query,
                        error=exc, bad_id=False, found=None, recent=[], slowest=[])
    return ctx.page(request, "traces.html", page_name="traces", title="Traces", query=query, error=None,
                    bad_id=bool(wanted), **data)


def _trace_data(ctx: DashboardContext, trace_id: str) -> dict[str, Any]:
    engine = ctx.engine
    assert engine is not None
    spans = q.trace_spans(engine, trace_id)
    lines = search_logs(engine, f"trace_id={trace_id}", limit=500)["lines"][::-1]
    return {"spans": spans, "errors": q.trace_errors(engine, trace_id), "lines": lines}


async def trace_detail(ctx: DashboardContext, request: Request) -> Response:
    """GET /traces/{trace_id}: the waterfall of one trace's spans and the errors recorded in it."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    trace_id = str(request.path_params["trace_id"]).lower()
    if not _TRACE_ID.match(trace_id):
        return ctx.page(request, "message.html", status_code=404, page_name="traces", title="Not found",
                        message="A trace id is 32 hexadecimal digits.")
    data = await ctx.read(_trace_data, ctx, trace_id)
    if not data["spans"] and not data["errors"] and not data["lines"]:
        return ctx.page(request, "message.html", status_code=404, page_name="traces", title="Not found",
                        message="No spans or errors are stored for this trace. Spans go to the local store "
                                "only when no OTLP endpoint is configured.")
    rows = waterfall(data["spans"])
    start = min((float(s["start_time"]) for s in data["spans"]), default=0.0)
    end = max((float(s["end_time"]) for s in data["spans"]), default=start)
    return ctx.page(request, "trace.html", page_name="traces", title=f"Trace {trace_id[:8]}…",
                    trace_id=trace_id, rows=rows, errors=data["errors"], lines=data["lines"], start=start,
                    total_ms=(end - start) * 1000, format_value=format_value)


ROUTES: list[tuple[str, Endpoint, list[str]]] = [
    ("/traces", traces_list, ["GET"]),
    ("/traces/{trace_id:str}", trace_detail, ["GET"]),
]
