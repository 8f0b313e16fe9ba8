"""The monitors page: each cron monitor, its next expected run and its recent runs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kansoku.store import monitors as stored
from kansoku.web.dashboard.context import DashboardContext, Endpoint, no_store

__all__ = ["ROUTES"]

RUNS_SHOWN = 10


def _data(ctx: DashboardContext) -> list[dict[str, Any]]:
    engine = ctx.engine
    assert engine is not None
    shown = []
    for row in stored.list_monitors(engine):
        found = stored.get_monitor(engine, row["name"], runs=RUNS_SHOWN) or {**row, "checkins": []}
        shown.append({**found, "schedule_text": stored.spec_of(row).describe()})
    return shown


async def monitors_page(ctx: DashboardContext, request: Request) -> Response:
    """GET /monitors: every monitor with its status, next expected run and last runs."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    monitors = await ctx.read(_data, ctx)
    return ctx.page(request, "monitors.html", page_name="monitors", title="Monitors", monitors=monitors)


ROUTES: list[tuple[str, Endpoint, list[str]]] = [("/monitors", monitors_page, ["GET"])]
