"""JSON API over alerting: rules, the delivery log, silences, retrying dead notifications.

Mounted under the route prefix by the dashboard app, which adds authorization and the CSRF check
around every route; nothing here checks credentials. Store work runs in the thread pool.
"""

from __future__ import annotations

import time
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from kansoku.alerts import outbox as outbox_ops
from kansoku.alerts.engine import RESOLVING_CHANNELS, AlertEngine
from kansoku.alerts.silences import create_silence, expire_silence, list_silences
from kansoku.exceptions import ConfigError
from kansoku.store import queries
from kansoku.typing import Clock

__all__ = ["routes"]

_MAX_LIMIT: Final = queries.MAX_DELIVERIES
_SILENCE_FIELDS: Final = ("rule", "group_key", "tag", "text", "comment", "created_by")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _int(request: Request, name: str, default: int, upper: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        raise ConfigError(f"query parameter {name!r} must be an integer") from None
    return max(0, min(value, upper))


def _mask_url(value: Any) -> Any:
    """Only scheme and host of a URL: paths and queries often carry tokens."""
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.hostname or ''}/…"
    return value


def routes(
    engine: Engine, alert_engine: AlertEngine | None = None, *, clock: Clock | None = None
) -> list[BaseRoute]:
    """The alerting API routes, relative to the route prefix."""
    now: Clock = clock or (alert_engine.clock if alert_engine is not None else time.time)

    async def rules(request: Request) -> JSONResponse:
        if alert_engine is None:
            return _error(404, "alerting is not configured in this process")
        config = alert_engine.config
        with_state = await run_in_threadpool(queries.rule_states, engine)
        items = []
        for rule in config.rules:
            data = rule.model_dump(mode="json")
            data.update(routed_to=config.channels_of(rule), **with_state.get(rule.name, {}))
            items.append(data)
        channels = []
        for channel in config.channels.values():
            data = {key: _mask_url(value) for key, value in channel.model_dump(mode="json").items()}
            data["sends_resolutions"] = channel.type in RESOLVING_CHANNELS
            channels.append(data)
        return JSONResponse({"rules": items, "channels": channels})

    async def deliveries(request: Request) -> JSONResponse:
        status = request.query_params.get("status")
        if status is not None and status not in queries.DELIVERY_STATUSES:
            return _error(400, f"status must be one of {', '.join(sorted(queries.DELIVERY_STATUSES))}")
        try:
            limit = _int(request, "limit", 50, _MAX_LIMIT)
            offset = _int(request, "offset", 0, 10**9)
        except ConfigError as exc:
            return _error(400, str(exc))
        found = await run_in_threadpool(lambda: queries.deliveries(
            engine, status=status, channel=request.query_params.get("channel"),
            rule=request.query_params.get("rule"), limit=limit, offset=offset))
        return JSONResponse(found)

    async def retry(request: Request) -> JSONResponse:
        outbox_id = int(request.path_params["id"])
        done = await run_in_threadpool(outbox_ops.retry_dead, engine, outbox_id, now())
        if done:
            return JSONResponse({"id": outbox_id, "status": "pending"})
        exists = await run_in_threadpool(queries.notification_exists, engine, outbox_id)
        if exists:
            return _error(409, "only dead notifications can be retried")
        return _error(404, "no such notification")

    async def silences_get(request: Request) -> JSONResponse:
        everything = request.query_params.get("all") in ("1", "true", "yes")
        found = await run_in_threadpool(list_silences, engine, now(), include_expired=everything)
        return JSONResponse({"items": [s.as_dict() for s in found]})

    async def silences_post(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ConfigError("expected a JSON object")
            started = now()
            ends_at = _ends_at(body, started)
            fields = {key: _text(body, key) for key in _SILENCE_FIELDS}
            silence = await run_in_threadpool(lambda: create_silence(
                engine, now=started, ends_at=ends_at, rule=fields["rule"], group_key=fields["group_key"],
                tag=fields["tag"], text=fields["text"], comment=fields["comment"] or "",
                created_by=fields["created_by"] or ""))
        except ValueError as exc:  # ConfigError and malformed JSON alike
            return _error(400, str(exc) or "invalid JSON body")
        if alert_engine is not None:
            alert_engine.silences.invalidate()
        return JSONResponse(silence.as_dict(), status_code=201)

    async def silence_expire(request: Request) -> JSONResponse:
        silence_id = int(request.path_params["id"])
        done = await run_in_threadpool(expire_silence, engine, silence_id, now())
        if alert_engine is not None:
            alert_engine.silences.invalidate()
        if not done:
            return _error(404, "no such active silence")
        return JSONResponse({"id": silence_id, "expired": True})

    return [
        Route("/api/alerts/rules", rules, methods=["GET"]),
        Route("/api/alerts/deliveries", deliveries, methods=["GET"]),
        Route("/api/alerts/deliveries/{id:id}/retry", retry, methods=["POST"]),
        Route("/api/alerts/silences", silences_get, methods=["GET"]),
        Route("/api/alerts/silences", silences_post, methods=["POST"]),
        Route("/api/alerts/silences/{id:id}/expire", silence_expire, methods=["POST"]),
    ]


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise ConfigError(f"{key!r} must be a string of at most 2000 characters")
    return value


def _ends_at(body: dict[str, Any], now: float) -> float:
    if body.get("ends_at") is not None:
        value = body["ends_at"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError("'ends_at' must be epoch seconds")
        return float(value)
    minutes = body.get("duration_minutes", 60)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 < minutes <= 525_600:
        raise ConfigError("'duration_minutes' must be a number between 0 and 525600")
    return now + float(minutes) * 60
