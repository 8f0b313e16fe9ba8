"""JSON API over cron monitors, and the check-in endpoint for jobs on other hosts.

`GET /api/monitors` and `GET /api/monitors/{name}` sit behind the dashboard's authorization like
every API route. `POST /api/checkins/{name}?status=ok|error|in_progress` (also `checkin_id` and
`duration`, as query parameters or a small JSON body) is exempt from the dashboard's session and
CSRF check and takes its own bearer token instead: `monitor_token` (KANSOKU_MONITOR_TOKEN), or
the dashboard token; with neither set, loopback clients only (403 for others). Compared in
constant time; a wrong or missing token is a 401 and records nothing. An unknown monitor is a 404, a bad status a 400.
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Final

import orjson
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from kansoku.monitors.schedule import MonitorSpec, utc_iso
from kansoku.settings import Settings
from kansoku.store import monitors as stored
from kansoku.typing import Clock
from kansoku.web.auth import is_loopback_client

__all__ = ["CHECKIN_PREFIX", "routes"]

CHECKIN_PREFIX: Final = "/api/checkins/"
_MAX_BODY: Final = 4096


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _tokens(settings: Settings) -> list[bytes]:
    secrets = (settings.monitor_token, settings.dashboard_token)
    return [secret.get_secret_value().encode() for secret in secrets if secret is not None]


def allowed(request: Request, settings: Settings) -> bool:
    """Whether the request may check in: a configured token as bearer, or a loopback client without tokens."""
    tokens = _tokens(settings)
    if not tokens:
        return is_loopback_client(request.scope)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    presented = given.strip().encode()
    # every token compared, so the time does not tell which one nearly matched
    matches = [hmac.compare_digest(presented, token) for token in tokens]
    return scheme.lower() == "bearer" and any(matches)


async def _fields(request: Request) -> dict[str, Any]:
    fields: dict[str, Any] = dict(request.query_params)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise ValueError(f"the body is over {_MAX_BODY} bytes")
    if body.strip():
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ValueError("the body is not JSON; send {\"status\": \"ok\"} or use ?status=ok") from None
        if not isinstance(parsed, dict):
            raise ValueError("the body must be a JSON object such as {\"status\": \"ok\"}")
        fields.update(parsed)
    return fields


def routes(engine: Engine, settings: Settings, specs: dict[str, MonitorSpec], *,
           clock: Clock = time.time) -> list[BaseRoute]:
    """The monitor API routes, relative to the route prefix."""

    async def list_all(request: Request) -> JSONResponse:
        rows = await run_in_threadpool(stored.list_monitors, engine)
        return JSONResponse({"items": [_shown(row) for row in rows]})

    async def show(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        found = await run_in_threadpool(lambda: stored.get_monitor(engine, name, runs=50))
        if found is None:
            return _error(404, f"no monitor named {name!r}")
        return JSONResponse(_shown(found))

    async def checkin(request: Request) -> JSONResponse:
        if not allowed(request, settings):
            if not _tokens(settings):
                return _error(403, "monitor check-ins are open to loopback clients only, because neither "
                              "KANSOKU_MONITOR_TOKEN nor KANSOKU_DASHBOARD_TOKEN is set")
            return _error(401, "authentication required: send Authorization: Bearer <KANSOKU_MONITOR_TOKEN>",
                          **{"www-authenticate": 'Bearer realm="kansoku"'})
        name = request.path_params["name"]
        try:
            fields = await _fields(request)
            status = str(fields.get("status", ""))
            duration = None if fields.get("duration") in (None, "") else float(fields["duration"])
            if duration is not None and duration < 0:
                raise ValueError("duration must not be negative")
            checkin_id = fields.get("checkin_id") or None
            result = await run_in_threadpool(lambda: stored.checkin(
                engine, name, status, now=clock(), spec=specs.get(name), duration=duration,
                checkin_id=None if checkin_id is None else str(checkin_id)[:32], source="http"))
        except stored.UnknownMonitor as exc:
            return _error(404, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        return JSONResponse(result, status_code=201)

    return [
        Route("/api/monitors", list_all, methods=["GET"]),
        Route("/api/monitors/{name}", show, methods=["GET"]),
        Route(CHECKIN_PREFIX + "{name}", checkin, methods=["POST"]),
    ]


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A monitor as the API shows it: the row, its schedule in words, times also in ISO form."""
    shown = {**row, "schedule_text": stored.spec_of(row).describe(),
             "next_expected": utc_iso(row.get("next_expected_at")), "last_checkin": utc_iso(row.get("last_checkin_at"))}
    if "checkins" in row:
        shown["checkins"] = [{**c, "started": utc_iso(c["started_at"])} for c in row["checkins"]]
    return shown
