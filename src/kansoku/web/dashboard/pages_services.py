"""The services page: every service seen in the last 24 hours and the map of who calls whom."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kansoku.store.queries import service_edges, service_summary
from kansoku.web.dashboard.context import DashboardContext, Endpoint, no_store

__all__ = ["ROUTES", "layout"]

WIDTH, HEIGHT, RADIUS = 640, 420, 160


def layout(services: list[str], edges: list[dict[str, Any]]) -> dict[str, Any]:
    """Positions of the services on a circle and the edges as lines between them (SVG units)."""
    n = len(services)
    at: dict[str, tuple[float, float]] = {}
    for index, name in enumerate(services):
        angle = -math.pi / 2 + 2 * math.pi * index / max(n, 1)
        radius = 0 if n == 1 else RADIUS
        at[name] = (round(WIDTH / 2 + radius * math.cos(angle), 1), round(HEIGHT / 2 + radius * math.sin(angle), 1))
    lines = []
    for edge in edges:
        a, b = at.get(edge["caller"]), at.get(edge["callee"])
        if a is None or b is None:
            continue
        dx, dy = b[0] - a[0], b[1] - a[1]
        shrink = 34 / (math.hypot(dx, dy) or 1.0)  # stop at the node's circle so the arrowhead shows
        lines.append({**edge, "x1": round(a[0] + dx * shrink, 1), "y1": round(a[1] + dy * shrink, 1),
                      "x2": round(b[0] - dx * shrink, 1), "y2": round(b[1] - dy * shrink, 1)})
    nodes = [{"name": name, "x": x, "y": y} for name, (x, y) in at.items()]
    return {"width": WIDTH, "height": HEIGHT, "nodes": nodes, "lines": lines}


def _data(ctx: DashboardContext) -> dict[str, Any]:
    engine = ctx.engine
    assert engine is not None
    since = ctx.clock() - 86400
    services, edges = service_summary(engine, since), service_edges(engine, since)
    return {"services": services, "edges": edges, "map": layout([s["service"] for s in services], edges)}


async def services_page(ctx: DashboardContext, request: Request) -> Response:
    """GET /services: the services of the last 24 hours and their calls to each other."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    data = await ctx.read(_data, ctx)
    return ctx.page(request, "services.html", page_name="services", title="Services", **data)


ROUTES: list[tuple[str, Endpoint, list[str]]] = [("/services", services_page, ["GET"])]
