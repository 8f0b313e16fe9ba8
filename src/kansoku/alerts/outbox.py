"""The durable outbox: notifications are rows before they are messages.

The engine writes rows in the transaction that claims the suppression window, so a crash after the
claim cannot lose the notification. Dispatchers (in any number of processes) claim due rows with
one atomic UPDATE (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers), send them,
and mark them sent, or pending again after an exponential, jittered backoff that honours a
server's Retry-After, or dead after the last attempt. Dead rows can be retried from the API.
A claim is a lease: a dispatcher that dies mid-send leaves rows another one takes over later.
The recipients a failed attempt did reach are kept in the row's payload (`render.DELIVERED`), so
the retry, by whichever dispatcher, skips them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Engine, and_, bindparam, exists, func, insert, or_, select, update

from kansoku.alerts.render import DELIVERED, MESSAGE
from kansoku.store import write_transaction
from kansoku.store.tables import delivery_attempts, outbox

__all__ = [
    "OutboxRow",
    "add_delivered",
    "backoff_delay",
    "claim",
    "enqueue",
    "find_ref",
    "mark_failed",
    "mark_sent",
    "record_attempt",
    "retry_dead",
    "supersede",
]

BACKOFF_BASE: Final = 2.0
BACKOFF_CAP: Final = 900.0


@dataclass(frozen=True)
class OutboxRow:
    """One claimed notification row."""

    id: int
    created_at: float
    channel: str
    rule: str
    group_key: str
    kind: str
    idempotency_key: str
    payload: Mapping[str, Any]
    attempts: int
    provider_ref: str | None = None


def enqueue(
    conn: Connection, *, channel: str, rule: str, group_key: str, kind: str, idempotency_key: str,
    payload: Mapping[str, Any], now: float, not_before: float | None = None,
) -> int:
    """Insert one pending row (inside the caller's transaction); return its id."""
    # A new row is a new message: the progress of the row it may be copied from (a resolution
    # reuses its trigger's payload) does not carry over.
    fresh = {key: value for key, value in payload.items() if key not in (DELIVERED, MESSAGE)}
    result = conn.execute(
        insert(outbox).values(
            created_at=now, channel=channel, rule=rule, group_key=group_key, kind=kind,
            idempotency_key=idempotency_key[:128], payload=fresh, status="pending", attempts=0,
            next_attempt_at=now if not_before is None else not_before,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def grouping_time(conn: Connection, *, channel: str, rule: str, now: float, wait: float) -> float:
    """When a new trigger row should become due: with a sibling still waiting, at the same time."""
    if wait <= 0:
        return now
    waiting = conn.execute(
        select(func.min(outbox.c.next_attempt_at)).where(
            outbox.c.channel == channel, outbox.c.rule == rule, outbox.c.kind == "trigger",
            outbox.c.status == "pending", outbox.c.attempts == 0, outbox.c.next_attempt_at > now,
        )
    ).scalar()
    return float(waiting) if waiting is not None else now + wait


def _due(now: float) -> Any:
    return or_(
        and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
        and_(outbox.c.status == "sending", outbox.c.locked_until < now),  # a dispatcher died mid-send
    )


_OPEN: Final = ("pending", "sending")


def _same_alert(other: Any) -> Any:
    """`other` is a row about the same alert (channel, rule, group) as the outer `outbox` row."""
    return and_(other.c.channel == outbox.c.channel, other.c.rule == outbox.c.rule,
                other.c.group_key == outbox.c.group_key)


def supersede(conn: Connection, now: float) -> int:
    """Triggers not sent yet whose alert has a newer resolution queued: never send them (returns how many).

    A stale trigger delivered after the resolution would reopen the alert (Alertmanager, PagerDuty
    keep the last word); only unsent rows are considered, in the open-status index.
    """
    newer = outbox.alias("newer")
    stale = exists().where(_same_alert(newer), newer.c.kind == "resolve", newer.c.id > outbox.c.id,
                           newer.c.status.in_(_OPEN))
    result = conn.execute(
        update(outbox)
        .where(outbox.c.kind == "trigger", _due(now) | (outbox.c.status == "pending"), stale)
        .values(status="superseded", locked_by=None, locked_until=None,
                last_error="superseded: the alert was resolved before this trigger went out")
    )
    return int(result.rowcount)


def claim(
    engine: Engine, worker: str, now: float, *, limit: int = 100, lease: float = 300.0
) -> list[OutboxRow]:
    """Atomically take up to `limit` due rows for `worker` (a lease of `lease` seconds).

    Rows about one alert go out in the order they were written: a row waits while an older one
    about the same alert is pending or being sent, so a pass never holds two of them and a
    resolution never races its trigger. Stale triggers are `supersede`d first.
    """
    older = outbox.alias("older")
    in_order = ~exists().where(_same_alert(older), older.c.id < outbox.c.id, older.c.status.in_(_OPEN))
    ids = (select(outbox.c.id).where(_due(now), in_order)
           .order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit))
    if engine.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    stmt = (
        update(outbox)
        .where(outbox.c.id.in_(ids.scalar_subquery()), _due(now))
        .values(status="sending", locked_by=worker, locked_until=now + lease, attempts=outbox.c.attempts + 1)
        .returning(outbox.c.id, outbox.c.created_at, outbox.c.channel, outbox.c.rule, outbox.c.group_key,
                   outbox.c.kind, outbox.c.idempotency_key, outbox.c.payload, outbox.c.attempts,
                   outbox.c.provider_ref)
    )
    with write_transaction(engine) as conn:
        supersede(conn, now)
        rows = conn.execute(stmt).all()
    return sorted((OutboxRow(*row) for row in rows), key=lambda r: r.id)


def mark_sent(engine: Engine, ids: Sequence[int], worker: str, now: float, provider_ref: str | None) -> int:
    """Rows delivered; returns how many were still ours to mark."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(list(ids)), outbox.c.locked_by == worker, outbox.c.status == "sending")
            .values(status="sent", sent_at=now, locked_by=None, locked_until=None, last_error=None,
                    provider_ref=provider_ref)
        )
    return int(result.rowcount)


def backoff_delay(attempts: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                  rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `attempts` tries: exponential, capped, half of it jitter."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return float(delay / 2 + rng() * delay / 2)


def mark_failed(
    engine: Engine, ids: Sequence[int], worker: str, now: float, error: str, *, attempts: int,
    max_attempts: int, retry_after: float | None = None, permanent: bool = False,
    rng: Callable[[], float] = random.random, delivered: Sequence[str] = (), message_key: str | None = None,
) -> str:
    """Rows not delivered: pending again after a backoff, or dead. Returns the new status.

    `delivered`: the recipients this attempt reached, added to every row's payload in the same
    transaction, so the next attempt (of any dispatcher, after a restart too) skips them.
    `message_key`: the attempt's Idempotency-Key, kept on rows that have none yet, so that the
    rows go out again as the same message under the same key (the dispatcher batches by it).
    """
    dead = permanent or attempts >= max_attempts
    delay = backoff_delay(attempts, rng=rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, BACKOFF_CAP * 4))
    values: dict[str, Any] = {"locked_by": None, "locked_until": None, "last_error": error[:2000]}
    values.update({"status": "dead"} if dead else {"status": "pending", "next_attempt_at": now + delay})
    with write_transaction(engine) as conn:
        if delivered or message_key:
            add_delivered(conn, ids, delivered, message_key=message_key)
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(list(ids)), outbox.c.locked_by == worker, outbox.c.status == "sending")
            .values(**values)
        )
    return "dead" if dead else "pending"


def add_delivered(conn: Connection, ids: Sequence[int], recipients: Sequence[str], *,
                  message_key: str | None = None) -> None:
    """Add `recipients` to the reached ones of each row (inside the caller's write transaction).

    `message_key` is stored on rows that have no message key yet.

    Not conditioned on holding the lease: the recipients were reached whoever holds the row now.
    The rows are locked first, in id order (SQLite: the write transaction's lock), so two
    dispatchers merging progress into one row keep both.
    """
    query = select(outbox.c.id, outbox.c.payload).where(outbox.c.id.in_(list(ids))).order_by(outbox.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    changed = []
    for row_id, payload in conn.execute(query).all():
        before = list(payload.get(DELIVERED, ()))
        after = before + [r for r in dict.fromkeys(recipients) if r not in before]
        update_: dict[str, Any] = {DELIVERED: after} if after != before else {}
        if message_key and not payload.get(MESSAGE):
            update_[MESSAGE] = message_key
        if update_:
            changed.append({"row_id": row_id, "new_payload": {**payload, **update_}})
    if changed:
        conn.execute(update(outbox).where(outbox.c.id == bindparam("row_id"))
                     .values(payload=bindparam("new_payload", type_=outbox.c.payload.type)), changed)


def record_attempt(
    engine: Engine, ids: Sequence[int], now: float, *, ok: bool, status_code: int | None,
    error: str | None, duration_ms: float,
) -> None:
    """One row per outbox row in `kansoku_delivery_attempts`."""
    if not ids:
        return
    with write_transaction(engine) as conn:
        conn.execute(insert(delivery_attempts), [
            {"outbox_id": i, "at": now, "ok": ok, "status_code": status_code,
             "error": None if error is None else error[:2000], "duration_ms": duration_ms}
            for i in ids
        ])


def retry_dead(engine: Engine, outbox_id: int, now: float) -> bool:
    """Put a dead row back in the queue with fresh attempts; False if it is not dead."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(outbox).where(outbox.c.id == outbox_id, outbox.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=now, locked_by=None, locked_until=None)
        )
    return bool(result.rowcount)


def find_ref(engine: Engine, *, channel: str, rule: str, group_key: str) -> str | None:
    """The provider reference (e.g. Slack `channel:ts`) of the newest sent trigger for a group."""
    with engine.connect() as conn:
        value = conn.execute(
            select(outbox.c.provider_ref).where(
                outbox.c.channel == channel, outbox.c.rule == rule, outbox.c.group_key == group_key,
                outbox.c.kind == "trigger", outbox.c.status == "sent", outbox.c.provider_ref.is_not(None),
            ).order_by(outbox.c.id.desc()).limit(1)
        ).scalar()
    return None if value is None else str(value)
