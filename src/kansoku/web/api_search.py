"""JSON API of the log store and the trace search, in the one query syntax (docs/search.md).

    GET /api/logs?q=QUERY&since=1h&limit=50&before=ID&after=ID   lines, newest first
    GET /api/traces?q=QUERY&since=1h&limit=50&before=TIME        traces (root spans), newest first
    GET /api/traces/{trace_id}                                   one trace's spans and log lines

Behind the web app's auth like every API route. A bad query is a 400 with the reason and the
position of the offending part; a bad parameter a 422; an unreachable store a 503.
"""

from __future__ import annotations

import re
from typing import Any, Final

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kansoku.store.query_syntax import QuerySyntaxError
from kansoku.store.search import MAX_LIMIT as MAX_LINES
from kansoku.store.search import search_logs
from kansoku.store.trace_search import MAX_LIMIT as MAX_TRACES
from kansoku.store.trace_search import get_trace, search_traces
from kansoku.web.api_errors import BadParameter, Endpoint, _guarded, _int, _json, _text

__all__ = ["routes"]

_TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")


def _query(request: Request) -> str:
    query = _text(request, "q", limit=2000) or ""
    since = _text(request, "since", limit=40)
    return f"{query} since:{since}".strip() if since else query


def _number(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadParameter(f"{name}={raw[:40]!r} is not a number") from None


def _syntax(handler: Endpoint) -> Endpoint:
    """A query that cannot be read: 400 with the reason and where."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except QuerySyntaxError as exc:
            return _json({"error": "invalid query", "detail": exc.reason, "query": exc.query,
                          "position": exc.start, "end": exc.end, "message": str(exc)}, 400)

    return endpoint


class _SearchApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def logs(self, request: Request) -> Response:
        """GET /api/logs: stored log lines matching `q`."""
        before, after = _int(request, "before", 0, 0, 2**62), _int(request, "after", 0, 0, 2**62)
        result = await run_in_threadpool(search_logs, self.engine, _query(request),
                                         limit=_int(request, "limit", 50, 1, MAX_LINES),
                                         before=before or None, after=after or None)
        return _json(result)

    async def traces(self, request: Request) -> Response:
        """GET /api/traces: traces whose root span (or any span, for other attributes) matches `q`."""
        result = await run_in_threadpool(search_traces, self.engine, _query(request),
                                         limit=_int(request, "limit", 50, 1, MAX_TRACES),
                                         before=_number(request, "before"))
        return _json(result)

    async def trace(self, request: Request) -> Response:
        """GET /api/traces/{trace_id}: the trace's spans (start order) and its log lines (oldest first)."""
        trace_id = str(request.path_params["trace_id"]).lower()
        if not _TRACE_ID.fullmatch(trace_id):
            raise BadParameter("a trace id is 32 hexadecimal digits")
        data = await run_in_threadpool(self._trace, trace_id)
        if not data["spans"] and not data["logs"]:
            return _json({"error": "not found", "detail": f"no spans or log lines stored for trace {trace_id}"},
                         404)
        return _json(data)

    def _trace(self, trace_id: str) -> dict[str, Any]:
        lines = search_logs(self.engine, f"trace_id={trace_id}", limit=MAX_LINES)["lines"]
        return {"trace_id": trace_id, "spans": get_trace(self.engine, trace_id), "logs": lines[::-1]}


def routes(engine: Engine) -> list[BaseRoute]:
    """The search routes over `engine`."""
    api = _SearchApi(engine)
    return [
        Route("/api/logs", _guarded(_syntax(api.logs)), methods=["GET"], name="logs_search"),
        Route("/api/traces", _guarded(_syntax(api.traces)), methods=["GET"], name="traces_search"),
        Route("/api/traces/{trace_id}", _guarded(_syntax(api.trace)), methods=["GET"], name="traces_show"),
    ]
