"""The logs page: stored lines newest first, the query bar, level and service facets, paging, a live tail."""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from kansoku.store.query_syntax import QuerySyntaxError
from kansoku.store.search import search_logs
from kansoku.web.dashboard.context import DashboardContext, Endpoint, no_store

__all__ = ["ROUTES"]

PAGE: Final = 50
FACET_SAMPLE: Final = 1000
LEVEL_FACETS: Final = (("warning", "level>=warning"), ("error", "level>=error"))


def _logs_data(ctx: DashboardContext, query: str, before: int | None) -> dict[str, Any]:
    engine = ctx.engine
    assert engine is not None
    page = search_logs(engine, query, limit=PAGE, before=before)
    # Facets over the newest lines of the query (bounded work whatever the store holds).
    sample = page["lines"] if before is None and len(page["lines"]) < PAGE else \
        search_logs(engine, query, limit=FACET_SAMPLE)["lines"]
    return {"page": page, "levels": Counter(line["level"] for line in sample),
            "services": Counter(line["service"] for line in sample if line["service"]).most_common(8),
            "sampled": len(sample)}


def _with(query: str, term: str) -> str:
    return f"{query} {term}".strip() if term not in query.split() else query


async def logs_page(ctx: DashboardContext, request: Request) -> Response:
    """GET /logs?q=QUERY&before=ID: matching lines, newest first (a bad query: 400 with the caret)."""
    missing = no_store(ctx, request)
    if missing is not None:
        return missing
    query = request.query_params.get("q", "")[:2000]
    raw_before = request.query_params.get("before", "")
    before = int(raw_before) if raw_before.isdigit() else None
    try:
        data = await ctx.read(_logs_data, ctx, query, before)
    except QuerySyntaxError as exc:
        return ctx.page(request, "logs.html", status_code=400, page_name="logs", title="Logs", query=query,
                        error=exc, page=None, levels={}, services=[], sampled=0, with_term=_with)
    return ctx.page(request, "logs.html", page_name="logs", title="Logs", query=query, error=None,
                    with_term=_with, level_facets=LEVEL_FACETS, **data)


ROUTES: list[tuple[str, Endpoint, list[str]]] = [
    ("/logs", logs_page, ["GET"]),
]
