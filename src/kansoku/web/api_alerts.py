"""JSON API over alerting: rules, the delivery log, silences, retrying dead notifications.

Mounted under the route prefix by the dashboard app, which adds authorization and the CSRF check
around every route; nothing here checks credentials. Store work runs in the thread pool.
"""

from __future__ import annotations

import time
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from kansoku.alerts import outbox as outbox_ops
from kansoku.alerts.engine import RESOLVING_CHANNELS, AlertEngine
from kansoku.alerts.silences import create_silence, expire_silence, list_silences
from kansoku.exceptions import ConfigError
from kansoku.store.tables import alert_state, outbox
from kansoku.typing import Clock

__all__ = ["routes"]

_STATUSES: Final = frozenset({"pending", "sending", "sent", "dead", "superseded"})
_MAX_LIMIT: Final = 500
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
        with_state = await run_in_threadpool(_rule_states, engine)
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
        if status is not None and status not in _STATUSES:
            return _error(400, f"status must be one of {', '.join(sorted(_STATUSES))}")
        try:
            limit = _int(request, "limit", 50, _MAX_LIMIT)
            offset = _int(request, "offset", 0, 10**9)
        except ConfigError as exc:
            return _error(400, str(exc))
        filters = {key: request.query_params.get(key) for key in ("channel", "rule")}
        items, total = await run_in_threadpool(_deliveries, engine, status, filters, limit, offset)
        return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})

    async def retry(request: Request) -> JSONResponse:
        outbox_id = int(request.path_params["id"])
        done = await run_in_threadpool(outbox_ops.retry_dead, engine, outbox_id, now())
        if done:
            return JSONResponse({"id": outbox_id, "status": "pending"})
        exists = await run_in_threadpool(_exists, engine, outbox_id)
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
        Route("/api/alerts/deliveries/{id:int}/retry", retry, methods=["POST"]),
        Route("/api/alerts/silences", silences_get, methods=["GET"]),
        Route("/api/alerts/silences", silences_post, methods=["POST"]),
        Route("/api/alerts/silences/{id:int}/expire", silence_expire, methods=["POST"]),
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


def _rule_states(engine: Engine) -> dict[str, dict[str, Any]]:
    query = select(alert_state.c.rule, func.max(alert_state.c.last_sent), func.sum(alert_state.c.suppressed),
                   func.count().filter(alert_state.c.firing.is_(True))).group_by(alert_state.c.rule)
    with engine.connect() as conn:
        return {
            rule: {"last_sent": last or None, "suppressed": int(suppressed or 0),
                   "firing_groups": int(firing)}
            for rule, last, suppressed, firing in conn.execute(query)
        }


def _deliveries(engine: Engine, status: str | None, filters: dict[str, str | None], limit: int,
                offset: int) -> tuple[list[dict[str, Any]], int]:
    where = [outbox.c.status == status] if status else []
    where += [getattr(outbox.c, key) == value for key, value in filters.items() if value]
    names = ("id", "created_at", "channel", "rule", "group_key", "kind", "status", "attempts",
             "next_attempt_at", "sent_at", "last_error", "payload")
    columns = [outbox.c[name] for name in names]
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(outbox).where(*where)).scalar_one()
        query = select(*columns).where(*where).order_by(outbox.c.id.desc()).limit(limit).offset(offset)
        rows = conn.execute(query)
        items = []
        for row in rows:
            data = dict(row._mapping)
            payload = data.pop("payload") or {}
            data["title"] = payload.get("item", {}).get("title", "")
            items.append(data)
    return items, int(total)


def _exists(engine: Engine, outbox_id: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(outbox.c.id).where(outbox.c.id == outbox_id)).first() is not None
