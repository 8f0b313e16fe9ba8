"""Alerting's stored state: the delivery log (outbox rows and their attempts), silences, rule state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from kansoku.store.queries._common import Row, rows
from kansoku.store.tables import alert_state, delivery_attempts, outbox, silences

_O = outbox.c
DELIVERY_STATUSES = ("pending", "sending", "sent", "dead", "superseded")
MAX_DELIVERIES = 500


def recent_notifications(engine: Engine, limit: int = 8) -> list[Row]:
    """The newest outbox rows (alerts sent, pending or dead), with what fired them (`_what_fired`)."""
    found = rows(engine, select(_O.id, _O.created_at, _O.channel, _O.rule, _O.kind, _O.status, _O.attempts,
                                _O.group_key, _O.last_error, _O.payload).order_by(_O.created_at.desc()).limit(limit))
    return [_what_fired(dict(row)) for row in found]


def _what_fired(item: dict[str, Any]) -> dict[str, Any]:
    """Replace an outbox row's payload by the alert's `title` and the `group_id` of its error group
    (None for alerts about a service's error ratio or a monitor, which name no group)."""
    payload = item.pop("payload") or {}
    alert = payload.get("item") if isinstance(payload, dict) else None
    alert = alert if isinstance(alert, dict) else {}
    group_id = alert.get("group_id")
    item["title"] = str(alert.get("title", ""))
    item["group_id"] = group_id if isinstance(group_id, int) and not isinstance(group_id, bool) else None
    return item


def deliveries(
    engine: Engine, *, status: str | None = None, channel: str | None = None, rule: str | None = None,
    limit: int = 50, offset: int = 0,
) -> dict[str, Any]:
    """Outbox rows, newest first, with what fired them (`_what_fired`) and their number of recorded attempts.

    Returns `{"items": [...], "total": n, "limit": .., "offset": ..}`.
    """
    if status and status not in DELIVERY_STATUSES:
        raise ValueError(f"status={status!r} is not one of {', '.join(DELIVERY_STATUSES)}")
    if not 0 <= limit <= MAX_DELIVERIES or offset < 0:
        raise ValueError(f"limit must be between 0 and {MAX_DELIVERIES}, offset not negative")
    where = [column == value for column, value in ((_O.status, status), (_O.channel, channel), (_O.rule, rule))
             if value]
    attempts = (select(func.count()).where(delivery_attempts.c.outbox_id == _O.id)
                .scalar_subquery().label("recorded_attempts"))
    statement = (select(_O.id, _O.created_at, _O.channel, _O.rule, _O.group_key, _O.kind, _O.status, _O.attempts,
                        _O.next_attempt_at, _O.last_error, _O.sent_at, _O.payload, attempts)
                 .where(*where).order_by(_O.created_at.desc(), _O.id.desc()).limit(limit).offset(offset))
    with engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(outbox).where(*where)).scalar_one())
        found = [_what_fired(dict(row)) for row in conn.execute(statement).mappings()]
    return {"items": found, "total": total, "limit": limit, "offset": offset}


def notification_exists(engine: Engine, outbox_id: int) -> bool:
    """Whether the outbox has a row with this id."""
    with engine.connect() as conn:
        return conn.execute(select(_O.id).where(_O.id == outbox_id)).first() is not None


def silence_list(engine: Engine, expired_since: float, limit: int = 100) -> list[Row]:
    """Active silences and the ones that ended after `expired_since`, latest ending first."""
    s = silences.c
    return rows(engine, select(silences).where(s.ends_at >= expired_since).order_by(s.ends_at.desc()).limit(limit))


def rule_states(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per rule: when it last sent, how many notifications it suppressed, how many groups are firing."""
    a = alert_state.c
    query = (select(a.rule, func.max(a.last_sent), func.sum(a.suppressed), func.count().filter(a.firing.is_(True)))
             .group_by(a.rule))
    with engine.connect() as conn:
        return {
            rule: {"last_sent": last or None, "suppressed": int(suppressed or 0), "firing_groups": int(firing)}
            for rule, last, suppressed, firing in conn.execute(query)
        }
