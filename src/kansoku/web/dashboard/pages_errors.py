"""Error pages: the list of groups (filters, search, sort, bulk actions) and one group's detail."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kansoku.store import queries as q
from kansoku.store.trace_search import traces_of_group
from kansoku.web.dashboard import commands
from kansoku.web.dashboard.charts import bar_chart
from kansoku.web.dashboard.context import DashboardContext, Endpoint, hour_labels, no_store, redirect
from kansoku.web.dashboard.filters import ErrorFilters
from kansoku.web.dashboard.present import chain, format_value, frame_lines

__all__ = ["PAGE_SIZE", "ROUTES"]

PAGE_SIZE = 25
MAX_BULK = 500


def _list_data(ctx: DashboardContext, filters: ErrorFilters) -> dict[str, Any]:
    engine = ctx.engine
    assert engine is not None
    found = q.list_groups(engine, **filters.arguments(PAGE_SIZE))
    return {"rows": found["items"], "total": found["total"], "options": q.filter_options(engine),
            "counts": q.count_by_status(engine)}


async def errors_list(ctx: DashboardContext, request: Request) -> Response:
    """GET /errors: groups matching the filters, one page of them."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    filters = ErrorFilters.parse(request.query_params)
    data = await ctx.read(_list_data, ctx, filters)
    pages = max(1, math.ceil(data["total"] / PAGE_SIZE))
    return ctx.page(request, "errors.html", page_name="errors", title="Errors", filters=filters,
                    pages=pages, statuses=q.STATUSES, sorts=list(q.SORTS), **data)


def _group_ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit() and len(v) < 12][:MAX_BULK]


async def errors_bulk(ctx: DashboardContext, request: Request) -> Response:
    """POST /errors/bulk: resolve or ignore the ticked groups, then back to the same list."""
    form = await request.form()
    action = str(form.get("action", ""))
    ids = _group_ids([str(v) for v in form.getlist("ids")])
    back = ErrorFilters.parse({k: str(v) for k, v in form.items() if k != "ids"})
    if action not in ("resolve", "ignore", "reopen") or ctx.engine is None:
        return redirect(request, "/errors", **back.query())
    changed = 0
    if ids:
        changed = await ctx.read(commands.set_group_status, ctx.engine, ids, action, ctx.clock(), ctx.alerts)
    return redirect(request, "/errors", **back.query(), done=f"bulk-{action}", n=str(changed))


def _detail_data(ctx: DashboardContext, ident: str, event_id: str | None) -> dict[str, Any] | None:
    engine = ctx.engine
    assert engine is not None
    group = q.get_group(engine, ident, events=0)
    if group is None:
        return None
    group_id = int(group["id"])
    if event_id is None and ident != str(group_id):
        event_id = ident  # /errors/<event id>, the link an alert carries, shows that very event
    event = q.get_event(engine, group_id, event_id) if event_id else None
    event = event or q.get_event(engine, group_id)
    previous, following = (q.event_neighbours(engine, group_id, event["timestamp"], event["id"])
                           if event else (None, None))
    hour = int(ctx.clock() // 3600)
    hourly = q.hourly_counts(engine, hour - 30 * 24 + 1, hour, group_id)
    first_day = hour - 30 * 24 + 1
    daily = [sum(hourly.get(first_day + d * 24 + h, 0) for h in range(24)) for d in range(30)]
    return {
        "group": group,
        "event": event,
        "data": dict(event["data"]) if event and isinstance(event["data"], dict) else {},
        "previous": previous,
        "following": following,
        "stored": group["stored_events"],
        "tags": q.tag_breakdown(engine, group_id),
        "hourly_chart": bar_chart([hourly.get(hour - 23 + i, 0) for i in range(24)], hour_labels(hour - 23, 24),
                                  title="Occurrences per hour, last 24 hours"),
        "daily_chart": bar_chart(daily, hour_labels(first_day, 30 * 24, "%d %b")[::24],
                                 title="Occurrences per day, last 30 days"),
        "traces": traces_of_group(engine, group_id),
    }


async def error_detail(ctx: DashboardContext, request: Request) -> Response:
    """GET /errors/{ident}: a group (by id, event id or group key) and one of its events."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    ident = str(request.path_params["ident"])[:64]
    event_id = request.query_params.get("event") or None
    data = await ctx.read(_detail_data, ctx, ident, event_id[:64] if event_id else None)
    if data is None:
        return ctx.page(request, "message.html", status_code=404, page_name="errors", title="Not found",
                        message="No error group or event with this id.")
    return ctx.page(request, "error_detail.html", page_name="errors", title=data["group"]["title"],
                    chain=chain(data["data"]), frame_lines=frame_lines, format_value=format_value, **data)


async def error_action(ctx: DashboardContext, request: Request) -> Response:
    """POST /errors/{group_id}/{action}: resolve, ignore or reopen one group."""
    group_id = int(request.path_params["group_id"])
    action = str(request.path_params["action"])
    if action not in commands.ACTIONS:
        return ctx.page(request, "message.html", status_code=404, page_name="errors", title="Not found",
                        message="Unknown action.")
    if ctx.engine is not None:
        await ctx.read(commands.set_group_status, ctx.engine, [group_id], action, ctx.clock(), ctx.alerts)
    return redirect(request, f"/errors/{group_id}", done=action)


ROUTES: list[tuple[str, Endpoint, list[str]]] = [
    ("/errors", errors_list, ["GET"]),
    ("/errors/bulk", errors_bulk, ["POST"]),
    ("/errors/{group_id:id}/{action:str}", error_action, ["POST"]),
    ("/errors/{ident:str}", error_detail, ["GET"]),
]
