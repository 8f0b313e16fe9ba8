"""JSON API over error groups: list, statistics, one group, resolve / ignore / reopen.

Mounted by the web app under the route prefix (`/kansoku/api/errors...`), behind its auth.
Database reads and writes run in the thread pool. A bad parameter is a 422 with the reason, an
unknown group a 404, an unreachable store a 503: never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kansoku.store import queries

if TYPE_CHECKING:
    from kansoku.errors.tracker import ErrorTracker

__all__ = ["routes"]

_IDENT: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ACTIONS: Final = {"resolve": "resolved", "ignore": "ignored", "reopen": "unresolved"}
Endpoint = Callable[[Request], Awaitable[Response]]


class BadParameter(ValueError):
    """A query or body parameter is invalid (422)."""


def _json(data: Any, status: int = 200) -> Response:
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)
    return Response(body, status_code=status, media_type="application/json")


def _problem(status: int, error: str, detail: str) -> Response:
    return _json({"error": error, "detail": detail}, status)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name}={raw[:40]!r} is not a whole number") from None
    if not low <= value <= high:
        raise BadParameter(f"{name}={value} must be between {low} and {high}")
    return value


def _text(request: Request, name: str, limit: int = 200) -> str | None:
    value = request.query_params.get(name)
    if value is not None and len(value) > limit:
        raise BadParameter(f"{name} is longer than {limit} characters")
    return value or None


def _ident(request: Request) -> str:
    ident = str(request.path_params["ident"])
    if not _IDENT.fullmatch(ident):
        raise BadParameter("the id must be a group id, an event id or a group key (letters, digits, - and _)")
    return ident


def _guarded(handler: Endpoint) -> Endpoint:
    """422 for bad parameters, 503 when the store cannot be reached."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except (BadParameter, ValueError) as exc:
            return _problem(422, "invalid parameter", str(exc))
        except SQLAlchemyError as exc:
            first = str(exc).strip().splitlines()
            detail = f"{type(exc).__name__}: {first[0] if first else ''}"[:300]
            return _problem(503, "store unavailable", detail)

    return endpoint


class _ErrorsApi:
    def __init__(self, engine: Engine, tracker: ErrorTracker | None,
                 on_resolve: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.engine = engine
        self.tracker = tracker
        self.on_resolve = on_resolve

    async def list_groups(self, request: Request) -> Response:
        """GET /api/errors: groups, filtered, sorted, one page."""
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadParameter(f"order={order[:20]!r} is not one of asc, desc")
        names = ("status", "severity", "category", "service", "environment")
        filters = {name: _text(request, name) for name in names}
        result = await run_in_threadpool(
            queries.list_groups, self.engine, **filters,
            text=_text(request, "q") or _text(request, "text"),
            sort=request.query_params.get("sort", "last_seen"), order=order,  # type: ignore[arg-type]
            limit=_int(request, "limit", 50, 1, queries.MAX_LIMIT),
            offset=_int(request, "offset", 0, 0, 10**9),
        )
        return _json(result)

    async def statistics(self, request: Request) -> Response:
        """GET /api/errors/statistics?hours=N, with the tracker's counters when there is one."""
        hours = _int(request, "hours", 24, 1, 24 * 366)
        result = await run_in_threadpool(queries.statistics, self.engine, hours=hours)
        if self.tracker is not None:
            result["tracker"] = {**self.tracker.stats(), "problem": self.tracker.problem()}
        return _json(result)

    async def show(self, request: Request) -> Response:
        """GET /api/errors/{id}: one group and its recent events."""
        ident = _ident(request)
        events = _int(request, "events", 20, 0, queries.MAX_LIMIT)
        group = await run_in_threadpool(queries.get_group, self.engine, ident, events=events)
        if group is None:
            return _problem(404, "not found", f"no error group or event {ident!r}")
        return _json(group)

    def action(self, name: str) -> Endpoint:
        """POST /api/errors/{id}/<name>: the endpoint that sets the group's status."""
        status = _ACTIONS[name]

        async def change(request: Request) -> Response:
            ident = _ident(request)
            release = await _release(request) if name == "resolve" else None
            group = await run_in_threadpool(queries.set_status, self.engine, ident, status, release=release)
            if group is None:
                return _problem(404, "not found", f"no error group or event {ident!r}")
            if name == "resolve" and self.on_resolve is not None:  # resolutions to the channels that fired
                await run_in_threadpool(self.on_resolve, group)
            return _json(group)

        return change


async def _release(request: Request) -> str | None:
    """`release` from the query string or a JSON body `{"release": "1.4.2"}`."""
    release = request.query_params.get("release")
    body = await request.body()
    if body.strip():
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadParameter("the body must be JSON, for example {\"release\": \"1.4.2\"}") from None
        if not isinstance(data, dict):
            raise BadParameter("the body must be a JSON object")
        value = data.get("release")
        if value is not None and not isinstance(value, str):
            raise BadParameter("release must be a string")
        release = value or release
    return release or None


def routes(engine: Engine, tracker: ErrorTracker | None = None,
           on_resolve: Callable[[dict[str, Any]], Any] | None = None) -> list[BaseRoute]:
    """The error API's routes (paths start with `/api/errors`); `on_resolve(group)` after a resolve."""
    api = _ErrorsApi(engine, tracker, on_resolve)
    found: list[BaseRoute] = [
        Route("/api/errors", _guarded(api.list_groups), methods=["GET"], name="errors_list"),
        Route("/api/errors/statistics", _guarded(api.statistics), methods=["GET"], name="errors_statistics"),
        Route("/api/errors/{ident}", _guarded(api.show), methods=["GET"], name="errors_show"),
    ]
    for action in _ACTIONS:
        found.append(Route(f"/api/errors/{{ident}}/{action}", _guarded(api.action(action)), methods=["POST"],
                           name=f"errors_{action}"))
    return found
